"""Pagination styles of ``http_poll``, one small class each.

A style knows two things (as singer-sdk's paginators and airbyte-cdk's pagination
strategies do): the query parameters of the page a saved cursor points at
(``request_params``), and the cursor of the next page from an answer (``next_page``,
None after the last page). The connector saves that in the cursor with ``in_pages``.

    none     NoPages      one request is the whole answer
    link     LinkHeader   ``Link: <url>; rel="next"``, followed as is (``next_url``)
    cursor   CursorToken  a token at a JSON pointer of the body, sent back as ``param``
    page     PageNumber   ``param`` = 1, 2, 3 ... while pages come back full
    offset   Offset       ``param`` = 0, size, 2 * size ... while pages come back full

A next link is followed only to the poller's own origin or an allowed one
(``connectors.polling.origins``).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from connectors.errors import PollError
from connectors.polling.origins import Origin, admit
from connectors.polling.values import scalar
from connectors.request import json_pointer

Cursor = dict[str, Any]


def next_link(response: httpx.Response, home: Origin, allowed: Collection[Origin]
              ) -> str | None:
    """The answer's ``Link: rel=next`` as an absolute URL, or None; a PollError when it
    leads to an origin the poller may not follow."""
    raw = response.links.get("next", {}).get("url")
    if not raw:
        return None
    try:
        url = response.url.join(raw)
    except httpx.InvalidURL:
        raise PollError(f"{home} answered an invalid next link") from None
    admit(url, home, allowed)
    return str(url)


class Paginator:
    """A pagination style; this base is ``none``: the first answer is the whole answer."""

    def next_url(self, cursor: Cursor) -> str | None:
        """A URL to request in place of the configured one (it carries its own query)."""
        return None

    def request_params(self, cursor: Cursor) -> dict[str, str]:
        """The query parameters that ask for the page ``cursor`` points at."""
        return {}

    def next_page(self, response: httpx.Response, body: Any, rows: int, cursor: Cursor
                  ) -> Cursor | None:
        """What to save to ask for the next page after this answer (``rows`` records);
        None when this was the last page."""
        return None


class NoPages(Paginator):
    pass


class LinkHeader(Paginator):
    def __init__(self, home: Origin, allowed: Collection[Origin]) -> None:
        self.home = home
        self.allowed = allowed

    def next_url(self, cursor: Cursor) -> str | None:
        url = cursor.get("next_url")
        return str(url) if url else None

    def next_page(self, response: httpx.Response, body: Any, rows: int, cursor: Cursor
                  ) -> Cursor | None:
        url = next_link(response, self.home, self.allowed)
        return {"next_url": url} if url else None


class CursorToken(Paginator):
    def __init__(self, param: str, pointer: str) -> None:
        self.param = param
        self.pointer = pointer

    def request_params(self, cursor: Cursor) -> dict[str, str]:
        token = cursor.get("token")
        return {self.param: str(token)} if token else {}

    def next_page(self, response: httpx.Response, body: Any, rows: int, cursor: Cursor
                  ) -> Cursor | None:
        token = scalar(json_pointer(body, self.pointer))
        return {"token": token} if token else None


class PageNumber(Paginator):
    """Pages numbered from ``start``, ``step()`` apart; a short page is the last one."""

    start = 1

    def __init__(self, param: str, size: int, size_param: str | None) -> None:
        self.param = param
        self.size = size
        self.size_param = size_param

    def step(self) -> int:
        return 1

    def request_params(self, cursor: Cursor) -> dict[str, str]:
        params = {self.param: str(cursor.get("position", self.start))}
        if self.size_param:
            params[self.size_param] = str(self.size)
        return params

    def next_page(self, response: httpx.Response, body: Any, rows: int, cursor: Cursor
                  ) -> Cursor | None:
        if rows < self.size:
            return None
        return {"position": int(cursor.get("position", self.start)) + self.step()}


class Offset(PageNumber):
    """Record offsets: from 0, a page size apart."""

    start = 0

    def step(self) -> int:
        return self.size


class Pagination(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    style: Literal["none", "link", "cursor", "page", "offset"] = "none"
    next: str | None = None  # cursor: JSON pointer to the next token
    param: str | None = None  # cursor/page/offset: the query parameter
    size_param: str | None = None  # page/offset: page size parameter
    size: int = Field(default=100, gt=0)

    def paginator(self, home: Origin, allowed: Collection[Origin]) -> Paginator:
        """This style's paginator; next links may lead to ``home`` or ``allowed``."""
        if self.style == "link":
            return LinkHeader(home, allowed)
        if self.style == "cursor":
            return CursorToken(self.param or "cursor", self.next or "/next")
        if self.style == "page":
            return PageNumber(self.param or "page", self.size, self.size_param)
        if self.style == "offset":
            return Offset(self.param or "offset", self.size, self.size_param)
        return NoPages()
