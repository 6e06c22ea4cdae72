"""Where a poller's credentials may go: its *home* origin, and the ``allowed_origins``
that next links and redirects may lead to, requested bare (``admit``)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, NamedTuple

import httpx
from pydantic import AfterValidator

from connectors.errors import PollError

_DEFAULT_PORTS = {"http": 80, "https": 443}


class Origin(NamedTuple):
    """Where credentials may go: scheme, host and port (RFC 6454)."""

    scheme: str
    host: str  # lower case; IDNA-encoded
    port: int

    @classmethod
    def of(cls, url: str | httpx.URL) -> Origin:
        """The origin of an http(s) URL; ValueError for anything else."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a URL: {exc}") from None
        scheme = parsed.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parsed.raw_host:
            raise ValueError(f"not an http or https URL with a host: {str(url)[:100]!r}")
        return cls(scheme, parsed.raw_host.decode("ascii").lower(),
                   parsed.port or _DEFAULT_PORTS[scheme])

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == _DEFAULT_PORTS[self.scheme] else f":{self.port}"
        return f"{self.scheme}://{host}{port}"


def admit(url: str | httpx.URL, home: Origin, allowed: Collection[Origin]) -> bool:
    """Whether a request to ``url`` may carry the credentials of ``home`` (True), may only
    be made bare (False: an allowed origin), or is refused (PollError)."""
    try:
        origin = Origin.of(url)
    except ValueError as exc:
        raise PollError(f"refused to follow a link or redirect: {exc}") from None
    if origin == home:
        return True
    if origin in allowed:
        return False
    raise PollError(f"refused to follow a link or redirect to {origin}: add it to the "
                    "poller's allowed_origins to follow it without credentials (the "
                    f"poller's origin is {home})")


def check_origin(value: str) -> Origin:
    """An ``allowed_origins`` entry, parsed: ``scheme://host[:port]`` and nothing more;
    ValueError for anything else (a path, user info, a query, another scheme)."""
    problem = (f"allowed_origins: {value[:100]!r} is not an origin: write "
               "scheme://host[:port] (http or https), without a path")
    try:
        url = httpx.URL(value)
        origin = Origin.of(url)
    except (ValueError, httpx.InvalidURL):
        raise ValueError(problem) from None
    if url.userinfo or url.query or url.fragment or url.raw_path not in (b"/", b""):
        raise ValueError(problem)
    return origin


def _http_url(value: str) -> str:
    Origin.of(value)  # raises ValueError
    return value


HttpUrlText = Annotated[str, AfterValidator(_http_url)]  # an http(s) URL, kept as written
