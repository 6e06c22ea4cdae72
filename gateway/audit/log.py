"""``AuditLog``: what the request path calls (``record``: a tuple append) and the
background task that hands lines to the audit-io thread every ``FLUSH_INTERVAL``."""


from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from gateway.audit.retention import expire
from gateway.audit.sink import Line, Sink, errno_name
from gateway.tasks import cancel, supervised

if TYPE_CHECKING:
    from gateway.config import AuditConfig


log = structlog.get_logger(__name__)

OUTCOMES = frozenset({"accepted", "duplicate", "rejected", "handshake", "filtered",
                      "published", "dead_lettered", "failed", "replayed"})

# Lines are written at most this often: each write wakes the I/O thread, which then has
# to win the GIL from the event loop; at 10 ms that cost the request path about 2%.
FLUSH_INTERVAL = 0.05
FIRST_RETRY = 0.1  # after a failed write; doubles up to MAX_RETRY
MAX_RETRY = 5.0

# The defaults of gateway.config.AuditConfig
MAX_BYTES = 100 * 1024 * 1024
KEEP = 5
MAX_BACKLOG = 100_000
# governance.retention_days is enforced by a sweep this often (across every process)
RETENTION_INTERVAL = 3600.0





@dataclass
class _Episode:
    """A run of failed writes, from the first failure to the next successful flush."""

    since: float
    dropped_before: int
    written: int = 0  # lines that made it to the file during the episode


class AuditLog:
    """The trail of one process: ``record`` on the event loop, the writing on its
    audit-io thread. ``open`` and ``close`` belong to the lifespan."""

    def __init__(self, path: Path, *, max_bytes: int = MAX_BYTES, keep: int = KEEP,
                 max_backlog: int = MAX_BACKLOG, retention: Mapping[str, float] | None = None,
                 retention_interval: float = RETENTION_INTERVAL) -> None:
        self.path = path
        # connector id -> seconds its lines are kept (governance.retention_days)
        self.retention = dict(retention or {})
        self.retention_interval = retention_interval
        self._expiry: asyncio.Task[None] | None = None
        self._lines: list[Line] = []
        self._ready = asyncio.Event()
        self._sink = Sink(path, max_bytes=max_bytes, keep=keep, max_backlog=max_backlog)
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-io")
        self._task: asyncio.Task[None] | None = None
        self._failing: _Episode | None = None
        self._retry = FIRST_RETRY

    @classmethod
    def from_config(cls, path: Path, config: AuditConfig,
                    retention: Mapping[str, float] | None = None) -> AuditLog:
        return cls(path, max_bytes=config.max_bytes, keep=config.keep,
                   max_backlog=config.max_backlog_lines, retention=retention)

    @property
    def errors(self) -> int:
        """Failed write attempts (gateway_audit_errors_total)."""
        return self._sink.errors

    @property
    def dropped(self) -> int:
        """Lines dropped, oldest first, past the backlog bound or unwritten at close."""
        return self._sink.dropped

    @property
    def backlog(self) -> int:
        """Lines recorded and not yet written."""
        return len(self._lines) + len(self._sink.backlog)

    async def open(self) -> None:
        """Opens the file and starts the writer. A file that cannot be opened (yet) is not
        fatal: it is logged and retried like any failed write."""
        await self._flush(write=True)
        self._task = supervised("audit-writer", self._run)
        if self.retention:
            self._expiry = supervised("audit-retention", self._expire)

    async def close(self) -> None:
        await cancel(self._expiry)
        await cancel(self._task)
        self._task = self._expiry = None
        await self._flush(write=True)
        lost = await asyncio.get_running_loop().run_in_executor(self._io, self._sink.close)
        if lost:
            log.warning("audit_lines_lost", path=str(self.path), lines=lost)
        self._io.shutdown(wait=True)

    def record(self, outcome: str, *, connector_id: str | None, reason: str | None = None,
               event_ids: Iterable[str] = (), request_id: str | None = None,
               remote_addr: str | None = None, body_sha256: str | None = None,
               size: int | None = None, client_request_id: str | None = None,
               traceparent: str | None = None) -> None:
        """One outcome. ``client_request_id``: the X-Request-Id the client sent, kept
        beside the gateway's own ``request_id``; ``traceparent``: the trace context the
        request's records carry (the line has each only when given)."""
        assert outcome in OUTCOMES, outcome
        self._lines.append((time.time(), connector_id, outcome, reason, event_ids, request_id,
                            remote_addr, body_sha256, size, client_request_id, traceparent))
        if not self._ready.is_set():
            self._ready.set()

    async def _run(self) -> None:
        while True:
            if self._failing is None:
                await self._ready.wait()
                self._ready.clear()
                await self._flush(write=True)
                await asyncio.sleep(FLUSH_INTERVAL)  # let a burst gather into one write
                continue
            retry_at = time.monotonic() + self._retry
            while (left := retry_at - time.monotonic()) > 0:
                await asyncio.sleep(min(left, FLUSH_INTERVAL))
                if self._lines:  # into the backlog, which is bounded
                    await self._flush(write=False)
            self._ready.clear()
            await self._flush(write=True)

    async def _expire(self) -> None:
        """Enforces ``retention`` on the audit-io thread, between writes."""
        sweep = functools.partial(expire, self.path, self.retention,
                                  interval=self.retention_interval)
        while True:
            removed = await asyncio.get_running_loop().run_in_executor(self._io, sweep)
            if removed:
                log.info("audit_lines_expired", path=str(self.path), lines=removed)
            await asyncio.sleep(min(60.0, self.retention_interval))

    async def _flush(self, *, write: bool) -> None:
        lines, self._lines = self._lines, []
        dropped_before = self.dropped
        job = asyncio.get_running_loop().run_in_executor(self._io, self._sink.flush, lines,
                                                         write)
        # Cancelling the writer (close) must neither cancel a job still queued for the I/O
        # thread (its lines would vanish) nor skip its outcome: hence shield and callback.
        job.add_done_callback(lambda done: self._settle(done, dropped_before))
        await asyncio.shield(job)

    def _settle(self, job: asyncio.Future[tuple[int, OSError | None] | None],
                dropped_before: int) -> None:
        """Counts a flush's outcome: logs the start and the end of a failure episode."""
        if job.cancelled() or job.exception() is not None or (result := job.result()) is None:
            return  # an unexpected exception reaches the writer task, which logs it
        written, error = result
        episode = self._failing
        if error is None:
            if episode is not None:
                log.info("audit_write_recovered", path=str(self.path),
                         waited=episode.written + written,
                         dropped=self.dropped - episode.dropped_before,
                         seconds=round(time.monotonic() - episode.since, 3))
                self._failing = None
            self._retry = FIRST_RETRY
        elif episode is None:
            self._failing = _Episode(time.monotonic(), dropped_before)
            log.warning("audit_write_failed", path=str(self.path), error=errno_name(error),
                        detail=error.strerror, backlog=self.backlog, retry_in=self._retry)
        else:
            episode.written += written
            self._retry = min(self._retry * 2, MAX_RETRY)
