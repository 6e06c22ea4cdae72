"""``PollHttp``: httpx with the manners of a well-behaved client, and credentials kept home.

Timeouts (the client's); retries with backoff and jitter on network errors and 5xx, and
on 429 after its Retry-After (``connectors.polling.retry``, tenacity); a requests-per-second
cap and a pause until ``X-RateLimit-Reset`` once ``X-RateLimit-Remaining`` reaches 0
(``Pacer``). Redirects are followed here, not by httpx (at most ``MAX_REDIRECTS`` hops;
303, and 301/302 after a POST, become a GET without body), so that credentials stay home
(``connectors.polling.origins``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping

import httpx

from connectors.errors import PollError
from connectors.polling.origins import Origin, admit
from connectors.polling.retry import RetryableStatus, retrying

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
MAX_RATE_LIMIT_PAUSE = 3600.0  # the longest X-RateLimit-Reset waited for


class Pacer:
    """When the next request may start: no sooner than ``1 / requests_per_second`` after
    the last one, nor before a rate limit's reset (``note``). Hand-written: it spaces
    requests that succeed, which is pacing, not retrying."""

    def __init__(self, requests_per_second: float | None, burst: int = 1) -> None:
        self.spacing = 1.0 / requests_per_second if requests_per_second else 0.0
        self.slack = (burst - 1) * self.spacing  # ``burst`` requests may go at once
        self._due = 0.0  # when the schedule is even again (GCRA's theoretical time)

    async def wait(self) -> None:
        delay = self._due - self.slack - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._due = max(self._due, time.monotonic()) + self.spacing

    def note(self, response: httpx.Response) -> None:
        """``X-RateLimit-Remaining: 0`` with ``X-RateLimit-Reset`` (epoch seconds, or
        seconds from now when small): nothing more until then."""
        remaining = response.headers.get("x-ratelimit-remaining")
        reset = (response.headers.get("x-ratelimit-reset") or "").strip()
        if remaining != "0" or not (reset.isascii() and reset.isdigit() and len(reset) < 16):
            return
        value = float(reset)
        until = value if value > 1e9 else time.time() + value
        pause = min(max(0.0, until - time.time()), MAX_RATE_LIMIT_PAUSE)
        self._due = max(self._due, time.monotonic() + pause + self.slack)


class PollHttp:
    """A poller's HTTP requests (see the module). Built on a client the caller owns, or
    by ``open``, which owns its client and closes it in ``aclose``."""

    def __init__(self, client: httpx.AsyncClient, *, requests_per_second: float | None,
                 max_retries: int, owns_client: bool = False, burst: int = 1) -> None:
        self.client = client
        self.max_retries = max_retries
        self.pacer = Pacer(requests_per_second, burst)
        self._owns_client = owns_client

    @classmethod
    def open(cls, *, timeout: float, requests_per_second: float | None,
             max_retries: int, burst: int = 1) -> PollHttp:
        # follow_redirects=False: ``request`` follows them, keeping credentials home
        client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        return cls(client, requests_per_second=requests_per_second, max_retries=max_retries,
                   owns_client=True, burst=burst)

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()

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
        """One request, retried (``connectors.polling.retry``); PollError after the
        last attempt failed."""
        attempts = 0
        try:
            async for attempt in retrying(self.max_retries):
                with attempt:
                    attempts += 1
                    await self.pacer.wait()
                    response = await self.client.request(method, url, params=params,
                                                         headers=headers, data=data,
                                                         follow_redirects=False)
                    if RetryableStatus.of(response):
                        raise RetryableStatus(response)
                    self.pacer.note(response)
                    return response
        except httpx.TransportError as exc:
            raise PollError(f"{type(exc).__name__} after {attempts} attempts") from None
        except RetryableStatus as exc:
            raise PollError(f"HTTP {exc.response.status_code} after {attempts} attempts"
                            ) from None
        raise PollError("unreachable")
