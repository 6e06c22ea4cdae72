"""When and how long a poller's HTTP request is retried: tenacity, with these bounds.

Retried: network errors (``httpx.TransportError``), HTTP 429 and 5xx, up to the poller's
``max_retries`` times after the first attempt. The wait before a retry:

* a 429's ``Retry-After`` (delay seconds or an HTTP-date), at most ``MAX_RETRY_AFTER``;
  a 429 without one waits the base (``FIRST_WAIT`` doubling up to ``MAX_WAIT``);
* a 5xx or a network error: the base times a random factor in [0.5, 1.5) (jitter).

``X-RateLimit-Remaining: 0`` is not a failure: the answer is used, and the next request
waits for ``X-RateLimit-Reset`` (``connectors.polling.http.Pacer``).
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)

FIRST_WAIT = 0.5  # seconds: the base wait before the first retry ...
MAX_WAIT = 30.0  # ... doubling up to this
MAX_RETRY_AFTER = 300.0  # the longest Retry-After honoured

BASE = wait_exponential(multiplier=FIRST_WAIT, max=MAX_WAIT)
# base/2 + uniform(0, base): the base times a factor in [0.5, 1.5)
JITTERED = (wait_exponential(multiplier=FIRST_WAIT / 2, max=MAX_WAIT / 2)
            + wait_random_exponential(multiplier=FIRST_WAIT, max=MAX_WAIT))


class RetryableStatus(Exception):
    """An answer worth asking again for (429, 5xx); the last one is a ``PollError``."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response

    @staticmethod
    def of(response: httpx.Response) -> bool:
        return response.status_code == 429 or response.status_code >= 500


def retry_after(response: httpx.Response) -> float | None:
    """The answer's ``Retry-After`` in seconds from now (seconds or an HTTP-date, never
    negative), or None when it has none that can be read."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit() and len(text) < 12:
        return float(text)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def server_wait(retry_state: RetryCallState) -> float:
    """The wait before retrying after the outcome of the last attempt (see the module)."""
    failed = retry_state.outcome.exception() if retry_state.outcome else None
    if isinstance(failed, RetryableStatus) and failed.response.status_code == 429:
        asked = retry_after(failed.response)
        return min(BASE(retry_state) if asked is None else asked, MAX_RETRY_AFTER)
    return JITTERED(retry_state)


def retrying(max_retries: int) -> AsyncRetrying:
    """One request's attempts: ``async for attempt in retrying(n): with attempt: ...``;
    the last failure is raised as it was (``httpx.TransportError``, ``RetryableStatus``)."""
    return AsyncRetrying(stop=stop_after_attempt(max_retries + 1),
                         retry=retry_if_exception_type((httpx.TransportError, RetryableStatus)),
                         wait=server_wait, reraise=True)
