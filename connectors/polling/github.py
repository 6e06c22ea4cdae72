"""``github_poll``: a repository's or organisation's events API, polled.

ETag (``If-None-Match``) on the first page, ``Link: rel=next`` pages, and
``X-Poll-Interval`` honoured as the poller's ``min_interval``. The token (from the
environment variable ``token_env``) goes only to the origin of ``api_url``.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import httpx
from pydantic import Field, model_validator

from connectors.errors import PollError
from connectors.polling.base import Page, Polled, PollingConnector, PollSchedule
from connectors.polling.http import PollHttp
from connectors.polling.origins import HttpUrlText, Origin
from connectors.polling.pagination import Cursor, LinkHeader
from connectors.polling.values import json_body
from connectors.request import parse_time


class GitHubPollConfig(PollSchedule):
    repository: str | None = None  # "owner/repo" ...
    organization: str | None = None  # ... or an organisation
    token_env: str = "GITHUB_TOKEN"  # noqa: S105 - the name of the variable holding it
    api_url: HttpUrlText = "https://api.github.com"  # its origin is where the token goes
    interval_seconds: float | None = Field(default=60, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _cron_replaces_the_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("cron") and "interval_seconds" not in data:
            return {**data, "interval_seconds": None}
        return data

    @model_validator(mode="after")
    def _one_target(self) -> GitHubPollConfig:
        if (self.repository is None) == (self.organization is None):
            raise ValueError("set exactly one of repository and organization")
        return self

    @property
    def events_url(self) -> str:
        if self.repository:
            return f"{self.api_url}/repos/{self.repository}/events"
        return f"{self.api_url}/orgs/{self.organization}/events"


def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name.removesuffix("Event"))
    return out.lstrip("_")


def _event(item: Any) -> Polled | None:
    """An item of the events API as an event; None when it has no id."""
    if not isinstance(item, dict) or "id" not in item:
        return None
    payload = item.get("payload") or {}
    action = payload.get("action") if isinstance(payload, dict) else None
    etype = _snake(str(item.get("type", "Event"))) + (f".{action}" if action else "")
    return Polled(str(item["id"]), etype, item, parse_time(item.get("created_at")))


class GitHubPollConnector(PollingConnector[GitHubPollConfig]):
    """Types follow the webhook connector: ``PullRequestEvent`` with action ``opened`` is
    ``pull_request.opened``; ids are GitHub's event ids, so webhook and poll overlaps of
    the same connector dedupe too.
    """

    source: ClassVar[str] = "github"
    Config = GitHubPollConfig

    def __init__(self, connector_id: str, config: GitHubPollConfig) -> None:
        super().__init__(connector_id, config)
        self.home = Origin.of(config.api_url)
        self.pages = LinkHeader(self.home, config.origins)

    async def poll(self, http: PollHttp, cursor: Cursor) -> Page:
        following = self.pages.next_url(cursor)
        headers = {"Accept": "application/vnd.github+json",
                   "X-GitHub-Api-Version": "2022-11-28"}
        token = os.environ.get(self.config.token_env)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if cursor.get("etag") and not following:
            headers["If-None-Match"] = str(cursor["etag"])
        response = await http.request("GET", following or self.config.events_url,
                                      headers=headers, home=self.home,
                                      allowed=self.config.origins,
                                      params=None if following else {"per_page": "100"})
        self._note_interval(response)
        if response.status_code == 304:
            return Page([], cursor)
        if response.status_code >= 400:
            raise PollError(f"HTTP {response.status_code} from GitHub")
        items = json_body(response)
        if not isinstance(items, list):
            raise PollError("GitHub answered something other than a list of events")
        events = [event for item in items if (event := _event(item)) is not None]
        after = self.pages.next_page(response, items, len(items), cursor)
        state: Cursor = {"etag": cursor.get("etag")}
        if after is not None:
            state.update(after)
        elif not following:
            state["etag"] = response.headers.get("etag")
        return Page(events, state, more=after is not None)

    def _note_interval(self, response: httpx.Response) -> None:
        interval = response.headers.get("x-poll-interval", "")
        if interval.isascii() and interval.isdigit() and len(interval) < 8:
            self.min_interval = float(interval)
