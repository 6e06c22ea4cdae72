"""Verification keys fetched over https: bounded cache, one fetch at a time, failures kept.

One small class for every connector that fetches a key (SNS's signing certificates,
Plaid's verification keys, Google's JWKS):

- Only ``https://`` URLs whose authority is exactly one of the hosts the connector names:
  no credentials, port, query or fragment, and no redirects (``check_url``). Tests reach
  a local server through ``KeyCache.transport``; the URL rules stay as they are.
- A bounded LRU cache (``size`` entries), each entry kept for the time its fetch said.
- One fetch per key at a time: concurrent deliveries wait for the same task, shielded so
  that a sender hanging up does not cancel it for the others.
- A failed fetch is remembered for ``failed_ttl`` seconds (in a bounded map): deliveries
  naming that key meanwhile get the same answer (503 with Retry-After when retriable,
  else 401) without a request.
- At most ``fetches_per_minute`` fetches (None: no budget): key ids named by forged
  deliveries cannot turn the gateway into a request amplifier. Past the budget: 503 with
  Retry-After.
- Bodies are read up to ``MAX_KEY_BYTES``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import httpx
import orjson
import structlog

from connectors.errors import GatewayError, KeyFetchError, SignatureError, Unavailable

log = structlog.get_logger(__name__)

T = TypeVar("T")
MAX_KEY_BYTES = 256 * 1024
CACHE_SIZE = 32
FAILED_FETCH_TTL = 60.0
FAILED_CACHE_SIZE = 256
FETCHES_PER_MINUTE = 30


@dataclass(frozen=True, slots=True)
class _Failure:
    until: float  # time.monotonic()
    retriable: bool
    detail: str

    def error(self) -> GatewayError:
        if self.retriable:
            return Unavailable(self.detail,
                               retry_after=max(1, math.ceil(self.until - time.monotonic())))
        return SignatureError(self.detail)


@dataclass(frozen=True, slots=True)
class _Entry(Generic[T]):
    value: T
    fetched: float
    expires: float


# fetch(client, key) -> (value, seconds to keep it); raises KeyFetchError
Fetch = Callable[[httpx.AsyncClient, str], Awaitable[tuple[T, float]]]


def check_url(url: str, hosts: Collection[str]) -> None:
    """``https://<one of hosts>/path`` and nothing more, else ValueError."""
    parts = urlsplit(url)
    if (parts.scheme != "https" or parts.netloc not in hosts or parts.query
            or parts.fragment or "?" in url or "#" in url):
        raise ValueError(f"{url!r} is not an https URL on {sorted(hosts)}")


async def fetch_bytes(client: httpx.AsyncClient, url: str, hosts: Collection[str], what: str,
                      *, body: dict[str, Any] | None = None) -> tuple[bytes, httpx.Headers]:
    """GET (or POST ``body`` as JSON) ``url`` after the host check; the answer's bytes (at
    most ``MAX_KEY_BYTES``) and headers.

    Statuses 5xx and 429 are retriable (503 to the sender); other non-200 answers are not
    (the key id is unknown: 401), except 401/403, which say our credentials are wrong."""
    try:
        check_url(url, hosts)
    except ValueError as exc:
        raise KeyFetchError(f"{what}: {exc}", retriable=False) from None
    try:
        async with client.stream("GET" if body is None else "POST", url, json=body) as answer:
            status = answer.status_code
            data = bytearray()
            async for chunk in answer.aiter_bytes():
                data += chunk
                if len(data) > MAX_KEY_BYTES:
                    raise KeyFetchError(f"{what}: answer larger than {MAX_KEY_BYTES} bytes",
                                        retriable=True)
            headers = answer.headers
    except httpx.HTTPError as exc:
        raise KeyFetchError(f"cannot fetch {what}: {type(exc).__name__}",
                            retriable=True) from None
    if status != 200:
        code = ""
        try:
            parsed = orjson.loads(data)
            if isinstance(parsed, dict) and isinstance(parsed.get("error_code"), str):
                code = f" ({parsed['error_code'][:64]})"
        except orjson.JSONDecodeError:
            pass
        raise KeyFetchError(f"{what}: HTTP {status}{code}",
                            retriable=status >= 500 or status in (401, 403, 429))
    return bytes(data), headers


async def fetch_json(client: httpx.AsyncClient, url: str, hosts: Collection[str], what: str,
                     *, body: dict[str, Any] | None = None) -> tuple[Any, httpx.Headers]:
    """``fetch_bytes``, the answer read as JSON."""
    data, headers = await fetch_bytes(client, url, hosts, what, body=body)
    try:
        return orjson.loads(data), headers
    except orjson.JSONDecodeError:
        raise KeyFetchError(f"{what}: answer is not JSON", retriable=True) from None


def max_age(headers: httpx.Headers, default: float, low: float, high: float) -> float:
    """``Cache-Control: max-age`` in [low, high], else ``default``."""
    for part in headers.get("cache-control", "").split(","):
        name, _, value = part.strip().partition("=")
        if name.lower() == "max-age" and value.isascii() and value.isdigit() and len(value) < 12:
            return min(high, max(low, float(value)))
    return default


class KeyCache(Generic[T]):
    """Keys by id (or URL), fetched by ``fetch`` under the rules in the module docstring."""

    def __init__(self, owner: str, what: str, fetch: Fetch[T], *, size: int = CACHE_SIZE,
                 fetches_per_minute: int | None = FETCHES_PER_MINUTE,
                 log_event: str = "key_fetch_failed") -> None:
        self.owner = owner  # the connector id, for logs
        self.what = what
        self.log_event = log_event
        self._fetch_value = fetch
        self.size = size
        self.fetches_per_minute = fetches_per_minute
        self.failed_ttl = FAILED_FETCH_TTL
        self.transport: httpx.AsyncBaseTransport | None = None  # tests inject one
        self._client: httpx.AsyncClient | None = None
        self._entries: OrderedDict[str, _Entry[T]] = OrderedDict()  # LRU order
        self._fetches: dict[str, asyncio.Task[T | _Failure]] = {}
        self._failures: dict[str, _Failure] = {}
        self._started: deque[float] = deque()  # monotonic times of recent fetches

    def http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=5.0, transport=self.transport,
                                             follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def peek(self, key: str) -> T | None:
        """The cached value, without I/O (None when absent or expired)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.value

    def age(self, key: str) -> float | None:
        entry = self._entries.get(key)
        return None if entry is None else time.monotonic() - entry.fetched

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    async def get(self, key: str) -> T:
        """The cached value, else fetched once for every delivery waiting for it."""
        value = self.peek(key)
        if value is not None:
            return value
        failure = self._failures.get(key)
        if failure is not None:
            if failure.until > time.monotonic():
                raise failure.error()
            del self._failures[key]
        loop = asyncio.get_running_loop()
        task = self._fetches.get(key)
        if task is None or task.cancelled() or task.get_loop() is not loop:
            self._spend_budget()
            task = loop.create_task(self._fetch(key))
            self._fetches[key] = task
            task.add_done_callback(lambda done: self._fetch_done(key, done))
        result = await asyncio.shield(task)  # a waiter cancelled leaves the fetch running
        if isinstance(result, _Failure):
            raise result.error()
        return result

    def _spend_budget(self) -> None:
        if self.fetches_per_minute is None:
            return
        now = time.monotonic()
        while self._started and self._started[0] <= now - 60:
            self._started.popleft()
        if len(self._started) >= self.fetches_per_minute:
            wait = max(1, math.ceil(self._started[0] + 60 - now))
            raise Unavailable(f"too many {self.what} fetches this minute", retry_after=wait)
        self._started.append(now)

    def _fetch_done(self, key: str, task: asyncio.Task[T | _Failure]) -> None:
        if self._fetches.get(key) is task:
            del self._fetches[key]
        if not task.cancelled():
            task.exception()  # retrieved here too: the waiters may all have gone

    async def _fetch(self, key: str) -> T | _Failure:
        try:
            value, ttl = await self._fetch_value(self.http(), key)
        except KeyFetchError as exc:
            return self._failed(key, exc.retriable, exc.detail)
        now = time.monotonic()
        self._entries[key] = _Entry(value, now, now + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value

    def _failed(self, key: str, retriable: bool, detail: str) -> _Failure:
        now = time.monotonic()
        failure = _Failure(now + self.failed_ttl, retriable, detail)
        for old in [k for k, f in self._failures.items() if f.until <= now]:
            del self._failures[old]
        while len(self._failures) >= FAILED_CACHE_SIZE:
            del self._failures[next(iter(self._failures))]
        self._failures[key] = failure
        log.warning(self.log_event, connector_id=self.owner, detail=detail)
        return failure
