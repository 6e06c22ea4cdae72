"""Polling connectors: sources that only answer when asked.

A poller turns a saved state (its cursor, pagination position, ETag) into one ``Page`` of
events plus the state to save once those events are durable; ``gateway.polling`` runs it
on its schedule and commits events and state in one transaction, so a crash re-polls
from the last durable point and overlaps are recognised by deterministic event ids.

``http_poll`` is the declarative poller: a JSON API needs config, not code.

Credentials go only where they were configured to. A poller's *home* is the origin
(scheme, host, port) of its configured ``url`` (github_poll: ``api_url``; the OAuth2
``token_url`` is the home of the token request). ``PollHttp`` follows redirects itself:
a next link or a redirect to another origin is refused with a ``PollError`` unless the
poller lists that origin in ``allowed_origins``, and then it is requested bare: no
configured headers, no auth header, no auth query parameter, no body.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, ClassVar, Literal, NamedTuple

import httpx
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from connectors.base import (
    Connector,
    ConnectorConfig,
    EventDraft,
    InboundRequest,
    json_pointer,
    parse_time,
)
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


def _http_url(value: str) -> str:
    Origin.of(value)  # raises ValueError
    return value


HttpUrlText = Annotated[str, AfterValidator(_http_url)]  # an http(s) URL, kept as written


def _json(response: httpx.Response) -> Any:
    """The answer's JSON; PollError when it cannot be parsed (not JSON, too deep)."""
    try:
        return response.json()
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise PollError(f"the source answered HTTP {response.status_code} with a body that "
                        f"is not usable JSON ({type(exc).__name__})") from None


def _number(value: Any) -> int | float | None:
    """A JSON number, or the decimal text ``_scalar`` saved for a too large integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit() and value.isascii():
        try:
            return int(value)
        except ValueError:  # past int's string conversion limit
            return None
    return None


def _later(value: Any, since: Any) -> bool:
    """Whether an incremental field's value moves the cursor past ``since``: numbers
    compare as numbers (10 is after 9), anything else as text."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return False
    if since is None:
        return True
    if not isinstance(value, str) and (floor := _number(since)) is not None:
        return value > floor
    return str(value) > str(since)


def _scalar(value: Any) -> str | int | float | None:
    """A cursor value that can be saved: text, a 64-bit integer or a float; a larger
    integer as its decimal text; None for anything else (objects, lists, booleans)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return str(value)
    return value


@dataclass(slots=True)
class Polled:
    id: str  # stable per record: the event id is derived from it
    type: str
    payload: dict[str, Any]
    timestamp: datetime | None = None


@dataclass(slots=True)
class Page:
    events: list[Polled]
    state: dict[str, Any]  # saved in the same transaction as the events
    more: bool = False  # another page is waiting: poll again at once


class PollSchedule(ConnectorConfig):
    interval_seconds: float | None = Field(default=None, gt=0)
    cron: str | None = None
    requests_per_second: float | None = Field(default=None, gt=0)
    timeout_seconds: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    # Origins ("https://cdn.example.com") that next links and redirects may lead to; they
    # are requested without any credentials. Any other origin is refused.
    allowed_origins: list[str] = Field(default_factory=list)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                url = httpx.URL(value)
                Origin.of(url)
            except (ValueError, httpx.InvalidURL):
                url = None
            if url is None or url.userinfo or url.query or url.fragment or \
                    url.raw_path not in (b"/", b""):
                raise ValueError(f"allowed_origins: {value[:100]!r} is not an origin: write "
                                 "scheme://host[:port] (http or https), without a path")
        return values

    @property
    def origins(self) -> frozenset[Origin]:
        """``allowed_origins``, parsed."""
        return frozenset(Origin.of(value) for value in self.allowed_origins)

    @model_validator(mode="after")
    def _one_schedule(self) -> PollSchedule:
        if (self.interval_seconds is None) == (self.cron is None):
            raise ValueError("set exactly one of interval_seconds and cron")
        if self.cron is not None:
            from cronsim import CronSim, CronSimError

            try:
                CronSim(self.cron, datetime.now())
            except CronSimError as exc:
                raise ValueError(f"cron: {exc}") from None
        return self


REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5


class PollHttp:
    """httpx with the manners of a well-behaved client: timeouts; retries with exponential
    backoff and jitter on network errors and 5xx; 429 with Retry-After; a pause until
    X-RateLimit-Reset when X-RateLimit-Remaining reaches 0; a requests-per-second cap.

    Redirects are followed here, not by httpx (at most ``MAX_REDIRECTS`` hops; 303, and
    301/302 after a POST, become a GET without body), so that credentials stay home.
    """

    def __init__(self, client: httpx.AsyncClient, *, requests_per_second: float | None,
                 max_retries: int) -> None:
        self.client = client
        self.spacing = 1.0 / requests_per_second if requests_per_second else 0.0
        self.max_retries = max_retries
        self._next_at = 0.0

    async def _pace(self) -> None:
        delay = self._next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._next_at = max(self._next_at, time.monotonic()) + self.spacing

    @staticmethod
    def _retry_after(response: httpx.Response, default: float) -> float:
        value = response.headers.get("retry-after")
        if value is None:
            return default
        if value.strip().isascii() and value.strip().isdigit() and len(value.strip()) < 12:
            return float(value)
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return default

    async def request(self, method: str, url: str | httpx.URL, *, home: Origin | None = None,
                      allowed: Collection[Origin] = frozenset(),
                      params: Mapping[str, str] | None = None,
                      headers: Mapping[str, str] | None = None,
                      data: Mapping[str, str] | None = None) -> httpx.Response:
        """``params``, ``headers`` and ``data`` are the credentials of ``home`` (default:
        the origin of ``url``): sent to it only. A URL on an ``allowed`` origin is requested
        bare; any other origin is refused with a PollError. Redirects are followed under
        the same rule, and once a hop has left home, credentials are never sent again."""
        target = httpx.URL(url)
        if home is None:
            try:
                home = Origin.of(target)
            except ValueError as exc:
                raise PollError(f"cannot request {exc}") from None
        carry = admit(target, home, allowed)
        for hop in range(MAX_REDIRECTS + 1):
            response = await self._send(method, target, params=params if carry else None,
                                        headers=headers if carry else None,
                                        data=data if carry else None)
            location = response.headers.get("location")
            if response.status_code not in REDIRECTS or location is None:
                return response
            if hop == MAX_REDIRECTS:
                break
            try:
                target = response.url.join(location)
            except httpx.InvalidURL:
                raise PollError(f"{home} redirected to an invalid Location") from None
            if (response.status_code == 303 and method != "HEAD") or (
                    response.status_code in (301, 302) and method == "POST"):
                method, data = "GET", None
            params = None  # the Location is the whole next URL
            carry = admit(target, home, allowed) and carry
        raise PollError(f"more than {MAX_REDIRECTS} redirects from a request to {home}")

    async def _send(self, method: str, url: httpx.URL, *,
                    params: Mapping[str, str] | None, headers: Mapping[str, str] | None,
                    data: Mapping[str, str] | None) -> httpx.Response:
        backoff = 0.5
        for attempt in range(self.max_retries + 1):
            await self._pace()
            last = attempt == self.max_retries
            try:
                response = await self.client.request(method, url, params=params,
                                                     headers=headers, data=data,
                                                     follow_redirects=False)
            except httpx.TransportError as exc:
                if last:
                    raise PollError(f"{type(exc).__name__} after {attempt + 1} attempts"
                                    ) from None
                await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311 - jitter
                backoff = min(backoff * 2, 30)
                continue
            if response.status_code == 429 or response.status_code >= 500:
                if last:
                    raise PollError(f"HTTP {response.status_code} after {attempt + 1} attempts")
                wait = (self._retry_after(response, backoff) if response.status_code == 429
                        else backoff * (0.5 + random.random()))  # noqa: S311 - jitter
                await asyncio.sleep(min(wait, 300))
                backoff = min(backoff * 2, 30)
                continue
            remaining = response.headers.get("x-ratelimit-remaining")
            reset = response.headers.get("x-ratelimit-reset")
            if remaining == "0" and reset and reset.strip().isascii() and reset.strip().isdigit() \
                    and len(reset.strip()) < 16:
                value = float(reset)  # epoch seconds, or seconds from now when small
                until = value if value > 1e9 else time.time() + value
                self._next_at = max(self._next_at, time.monotonic() + min(
                    max(0.0, until - time.time()), 3600))
            return response
        raise PollError("unreachable")


class PollingConnector(Connector):
    """Base of pollers: ``poll`` one page from a saved state."""

    Config: ClassVar[type[ConnectorConfig]] = PollSchedule
    takes_webhooks: ClassVar[bool] = False

    def verify(self, request: InboundRequest) -> None:
        raise NotImplementedError("pollers receive no deliveries")

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        raise NotImplementedError("pollers receive no deliveries")

    def auth(self) -> tuple[dict[str, str], dict[str, str]]:
        """Headers and query parameters that authenticate a request."""
        return {}, {}

    async def poll(self, http: PollHttp, state: dict[str, Any]) -> Page:
        raise NotImplementedError

    def next_link(self, response: httpx.Response, home: Origin) -> str | None:
        """The answer's ``Link: rel=next`` as an absolute URL, or None; a PollError
        when it leads to an origin this poller may not follow."""
        raw = response.links.get("next", {}).get("url")
        if not raw:
            return None
        try:
            url = response.url.join(raw)
        except httpx.InvalidURL:
            raise PollError(f"{home} answered an invalid next link") from None
        assert isinstance(self.config, PollSchedule)
        admit(url, home, self.config.origins)
        return str(url)


# -- http_poll --------------------------------------------------------------------------

class Auth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["bearer", "api_key", "basic", "oauth2"]
    token: SecretStr | None = None  # bearer
    header: str | None = None  # api_key in a header ...
    query: str | None = None  # ... or in the query
    value: SecretStr | None = None  # api_key
    username: str | None = None  # basic
    password: SecretStr | None = None
    token_url: HttpUrlText | None = None  # oauth2 client credentials (its own trusted origin)
    client_id: str | None = None
    client_secret: SecretStr | None = None
    scope: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> Auth:
        need = {"bearer": ("token",), "api_key": ("value",), "basic": ("username", "password"),
                "oauth2": ("token_url", "client_id", "client_secret")}[self.type]
        missing = [n for n in need if getattr(self, n) is None]
        if missing:
            raise ValueError(f"{self.type} auth needs {', '.join(missing)}")
        if self.type == "api_key" and (self.header is None) == (self.query is None):
            raise ValueError("api_key auth needs exactly one of header and query")
        return self


class Pagination(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    style: Literal["none", "link", "cursor", "page", "offset"] = "none"
    next: str | None = None  # cursor: JSON pointer to the next token
    param: str | None = None  # cursor/page/offset: the query parameter
    size_param: str | None = None  # page/offset: page size parameter
    size: int = Field(default=100, gt=0)


class Incremental(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    field: str  # JSON pointer in a record
    param: str  # query parameter: records with field >= the saved value


class HttpPollConfig(PollSchedule):
    url: HttpUrlText
    method: Literal["GET", "POST"] = "GET"
    query: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, SecretStr] = Field(default_factory=dict)  # may carry keys: secret
    auth: Auth | None = None
    records: str = ""  # JSON pointer to the list of records ("" = the body itself)
    id_field: str = "/id"
    timestamp_field: str | None = None
    event_type: str = "{source}.record"  # template over top-level record fields
    pagination: Pagination = Pagination()
    incremental: Incremental | None = None
    source: str = "http_poll"


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "unknown"


@dataclass
class _Token:
    value: str = ""
    expires: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class HttpPollConnector(PollingConnector):
    source: ClassVar[str] = "http_poll"
    Config = HttpPollConfig

    def __init__(self, connector_id: str, config: ConnectorConfig) -> None:
        super().__init__(connector_id, config)
        assert isinstance(config, HttpPollConfig)
        self.options = config
        self.source_slug = config.source
        self.home = Origin.of(config.url)
        self._token = _Token()

    async def _headers(self, http: PollHttp) -> tuple[dict[str, str], dict[str, str]]:
        headers = {k: v.get_secret_value() for k, v in self.options.headers.items()}
        query = dict(self.options.query)
        auth = self.options.auth
        if auth is None:
            return headers, query
        if auth.type == "bearer" and auth.token:
            headers["Authorization"] = "Bearer " + auth.token.get_secret_value()
        elif auth.type == "api_key" and auth.value:
            target = headers if auth.header else query
            target[auth.header or auth.query or ""] = auth.value.get_secret_value()
        elif auth.type == "basic" and auth.password:
            raw = f"{auth.username}:{auth.password.get_secret_value()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        elif auth.type == "oauth2":
            headers["Authorization"] = "Bearer " + await self._oauth2(http, auth)
        return headers, query

    async def _oauth2(self, http: PollHttp, auth: Auth) -> str:
        """Client-credentials token, refreshed before it expires (a minute, or half its
        lifetime when that is shorter)."""
        async with self._token.lock:
            if self._token.value and time.time() < self._token.expires:
                return self._token.value
            assert auth.token_url and auth.client_secret and auth.client_id
            form = {"grant_type": "client_credentials", "client_id": auth.client_id,
                    "client_secret": auth.client_secret.get_secret_value()}
            if auth.scope:
                form["scope"] = auth.scope
            response = await http.request("POST", auth.token_url, data=form,
                                          home=Origin.of(auth.token_url))
            if response.status_code != 200:
                raise PollError(f"token endpoint answered HTTP {response.status_code}")
            body = _json(response)
            if not isinstance(body, dict) or not body.get("access_token"):
                raise PollError("the token endpoint's answer has no access_token")
            self._token.value = str(body["access_token"])
            try:
                lifetime = float(body.get("expires_in", 3600))
            except (TypeError, ValueError):
                lifetime = 3600.0
            self._token.expires = time.time() + lifetime - min(60.0, lifetime / 2)  # early
            return self._token.value

    async def poll(self, http: PollHttp, state: dict[str, Any]) -> Page:
        o = self.options
        pg = o.pagination
        headers, query = await self._headers(http)
        url = state.get("next_url") or o.url
        if not state.get("next_url"):
            if o.incremental and state.get("since") is not None:
                query[o.incremental.param] = str(state["since"])
            if pg.style == "cursor" and state.get("token"):
                query[pg.param or "cursor"] = str(state["token"])
            if pg.style in ("page", "offset"):
                query[pg.param or pg.style] = str(state.get("position", 1 if pg.style == "page"
                                                            else 0))
                if pg.size_param:
                    query[pg.size_param] = str(pg.size)
            if state.get("etag") and not state.get("in_pages"):
                headers["If-None-Match"] = str(state["etag"])
        response = await http.request(o.method, url, params=query if url == o.url else None,
                                      headers=headers, home=self.home, allowed=o.origins)
        if response.status_code == 304:
            return Page([], state)
        if response.status_code >= 400:
            raise PollError(f"HTTP {response.status_code} from the source")
        body = _json(response)
        rows = json_pointer(body, o.records) if o.records else body
        if not isinstance(rows, list):
            raise PollError(f"no list of records at {o.records or 'the top level'}")
        events, since = [], state.get("since")
        for row in rows:
            if not isinstance(row, dict):
                continue
            rid = json_pointer(row, o.id_field)
            if rid is None:
                continue
            stamp = parse_time(json_pointer(row, o.timestamp_field)) if o.timestamp_field \
                else None
            etype = o.event_type.format_map(_Fields(
                {k: v for k, v in row.items() if isinstance(v, str | int | float)},
                source=o.source))
            events.append(Polled(str(rid), etype, row, stamp))
            if o.incremental:
                value = json_pointer(row, o.incremental.field)
                if _later(value, since):
                    since = value

        new_state: dict[str, Any] = {"since": _scalar(since), "etag": state.get("etag")}
        more = False
        if pg.style == "link" and (nxt := self.next_link(response, self.home)):
            new_state.update(next_url=nxt, in_pages=True)
            more = True
        elif pg.style == "cursor" and (token := _scalar(json_pointer(body, pg.next or "/next"))):
            new_state.update(token=token, in_pages=True)
            more = True
        elif pg.style in ("page", "offset") and len(rows) >= pg.size:
            step = 1 if pg.style == "page" else pg.size
            start = 1 if pg.style == "page" else 0
            new_state.update(position=int(state.get("position", start)) + step, in_pages=True)
            more = True
        if not more and not state.get("in_pages"):
            new_state["etag"] = response.headers.get("etag")  # only a whole first page
        return Page(events, new_state, more)


# -- github_poll ------------------------------------------------------------------------

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


def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name.removesuffix("Event"))
    return out.lstrip("_")


class GitHubPollConnector(PollingConnector):
    """A repository's or organisation's events API: ETag and X-Poll-Interval honored.

    Types follow the webhook connector: ``PullRequestEvent`` with action ``opened`` is
    ``pull_request.opened``; ids are GitHub's event ids, so webhook and poll overlaps of
    the same connector dedupe too.
    """

    source: ClassVar[str] = "github"
    Config = GitHubPollConfig

    def __init__(self, connector_id: str, config: ConnectorConfig) -> None:
        super().__init__(connector_id, config)
        assert isinstance(config, GitHubPollConfig)
        self.options = config
        self.home = Origin.of(config.api_url)
        self.poll_interval = 0.0  # the floor GitHub asks for (X-Poll-Interval)

    async def poll(self, http: PollHttp, state: dict[str, Any]) -> Page:
        o = self.options
        url = state.get("next_url") or (
            f"{o.api_url}/repos/{o.repository}/events" if o.repository
            else f"{o.api_url}/orgs/{o.organization}/events")
        headers = {"Accept": "application/vnd.github+json",
                   "X-GitHub-Api-Version": "2022-11-28"}
        token = os.environ.get(o.token_env)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if state.get("etag") and not state.get("next_url"):
            headers["If-None-Match"] = str(state["etag"])
        response = await http.request("GET", url, headers=headers, home=self.home,
                                      allowed=o.origins,
                                      params=None if state.get("next_url") else {"per_page": "100"})
        interval = response.headers.get("x-poll-interval", "")
        if interval.isascii() and interval.isdigit() and len(interval) < 8:
            self.poll_interval = float(interval)
        if response.status_code == 304:
            return Page([], state)
        if response.status_code >= 400:
            raise PollError(f"HTTP {response.status_code} from GitHub")
        events = []
        items = _json(response)
        if not isinstance(items, list):
            raise PollError("GitHub answered something other than a list of events")
        for item in items:
            if not isinstance(item, dict) or "id" not in item:
                continue
            payload = item.get("payload") or {}
            action = payload.get("action") if isinstance(payload, dict) else None
            etype = _snake(str(item.get("type", "Event"))) + (f".{action}" if action else "")
            events.append(Polled(str(item["id"]), etype, item, parse_time(item.get("created_at"))))
        nxt = self.next_link(response, self.home)
        new_state: dict[str, Any] = {"etag": state.get("etag")}
        if nxt:
            new_state["next_url"] = nxt
        elif not state.get("next_url"):
            new_state["etag"] = response.headers.get("etag")
        return Page(events, new_state, more=bool(nxt))
