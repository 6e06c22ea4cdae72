"""Background tasks: started in a lifespan, stopped with ``cancel``; none dies silently.

``supervised`` runs a long-lived body forever: when it raises, the error is logged with
its traceback and counted (``gateway_task_failures_total{task}``), and the body starts
again after a backoff that doubles up to ``MAX_BACKOFF`` (tenacity, as the pollers' and
the relay's retries). Only cancellation ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

log = structlog.get_logger(__name__)

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
CANCEL_RETRY = 1.0  # seconds before a cancellation is repeated

# task name -> failures since the process started (read by gateway.metrics)
FAILURES: dict[str, int] = {}


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait until it has stopped. The cancellation is
    repeated until the task ends: one can be lost (Python 3.11's ``asyncio.wait_for``
    drops a cancellation that arrives as the awaited call fails, and the body then goes
    on into its backoff)."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_RETRY)
    if not task.cancelled():
        with contextlib.suppress(Exception):
            task.result()  # retrieved: its outcome was logged where it failed


def _failed(name: str) -> Callable[[RetryCallState], None]:
    def record(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        FAILURES[name] = FAILURES.get(name, 0) + 1
        log.error("task_failed", task=name, error=type(exc).__name__,
                  retry_in=state.upcoming_sleep, exc_info=exc)
    return record


async def _forever(name: str, body: Callable[[], Awaitable[None]]) -> None:
    while True:  # a body that returned is simply run again, its backoff started over
        async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(Exception),  # never CancelledError
                wait=wait_exponential(multiplier=FIRST_BACKOFF, max=MAX_BACKOFF),
                before_sleep=_failed(name), reraise=True):
            with attempt:
                await body()


def supervised(name: str, body: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
    """Start ``body`` as a task that is restarted, with backoff, whenever it raises."""
    return asyncio.create_task(_forever(name, body), name=name)
