"""The outbox: what a 2xx promises, kept until Kafka has it.

A 2xx is answered only after the event is committed with ``synchronous=FULL``
(fsynced). Requests queue their submissions (``submit``, ``submit_each``) for the
database thread (``gateway.buffer.db``), which commits everything that arrived meanwhile
as one group commit (``gateway.buffer.commit``): one ``segments`` row holding the records
(``gateway.buffer.codec``). Deduplication rows are written in the same transaction as
the events, so "seen" and "kept" can never disagree, and SQLite's write lock makes the
check atomic across worker processes. They count toward ``max_bytes`` and expire after
the window, purged a chunk at a time.

The outbox keeps the counts that /readyz and /metrics show (refreshed from the file,
which other processes move too). The relay (``gateway.relay``) reads segments in commit
order (``fetch``) and deletes what Kafka acknowledged (``ack``); a record that Kafka and
the dead-letter topic both refused is kept in ``quarantine``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from gateway.buffer.codec import Record, pack, unpack
from gateway.buffer.commit import Outcome, Submission, commit_all, commit_each, fits
from gateway.buffer.db import Database, settle, transaction
from gateway.buffer.schema import DEDUP_ROW_BYTES
from gateway.config import BufferConfig
from gateway.errors import Unavailable

log = structlog.get_logger(__name__)

# One chunk of expired rows (the same in both): what a purge subtracts, then deletes.
_UNCOUNT = """UPDATE stats SET dedup_bytes = dedup_bytes - coalesce((SELECT sum(length(key) + ?)
    FROM (SELECT key FROM dedup WHERE expires < ? ORDER BY expires, key LIMIT ?)), 0)
    WHERE id = 1"""
_PURGE = """DELETE FROM dedup WHERE key IN
    (SELECT key FROM dedup WHERE expires < ? ORDER BY expires, key LIMIT ?)"""
# Expired deduplication rows are deleted this many at a time (through the expiry index),
# so that a purge never holds the write lock for long.
PURGE_CHUNK = 2000
PURGE_EVERY = 1.0


@dataclass(frozen=True, slots=True)
class Segment:
    """One group commit's records, as the relay reads them back."""

    id: int
    records: list[Record]
    events: int
    bytes: int


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A record Kafka refused for good, whose dead letter was refused as well."""

    id: int
    record: Record
    reason: str
    created: float


class Outbox:
    def __init__(self, db: Database, settings: BufferConfig) -> None:
        self.settings = settings
        self.events = 0
        self.bytes = 0
        self.dedup_bytes = 0  # deduplication rows count toward max_bytes too
        self.oldest: float | None = None  # when the oldest buffered event was committed
        self.quarantined = 0
        # The last commit's failure (None once a commit succeeds): /readyz reports it.
        self.commit_error: str | None = None
        self.wake = asyncio.Event()  # set after each commit: the relay has work
        self._db = db
        self._loop: asyncio.AbstractEventLoop | None = None  # set while accepting
        self._pending: deque[Submission] = db.pending
        self._notify = db.notify
        self._last_purge = 0.0
        db.commit = self._group_commit

    async def open(self) -> None:
        """Read the counts, then accept submissions (the database is open)."""
        await self._db.read(self.read_stats)
        self._loop = self._db.loop

    def close(self) -> None:
        """Accept no more submissions (those queued are still committed)."""
        self._loop = None

    # -- counts and bounds -----------------------------------------------------------

    def read_stats(self) -> None:
        """Refresh the counts from the database (other processes move them too)."""
        self.events, self.bytes, self.dedup_bytes, self.oldest, self.quarantined = (
            self._db.conn.execute(
                "SELECT events, bytes, dedup_bytes, (SELECT created FROM segments ORDER BY id"
                " LIMIT 1), (SELECT count(*) FROM quarantine) FROM stats").fetchone())

    @property
    def has_room(self) -> bool:
        """Room for one more event (of one byte)."""
        return fits(self.settings, self.events + 1, self.bytes + self.dedup_bytes + 1)

    def oldest_age(self, now: float | None = None) -> float:
        """Seconds since the oldest buffered event was committed (0 when empty)."""
        if self.oldest is None:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - self.oldest)

    # -- the request path ------------------------------------------------------------

    def submit(self, dedup: str | Sequence[str] | None,
               records: Sequence[Record]) -> asyncio.Future[bool]:
        """Make ``records`` durable; the future says False when any of the ``dedup``
        keys was seen within the window (all of them are claimed otherwise). (A plain
        function returning the future: the request path awaits it directly, without one
        more coroutine.)

        Raises BufferFull at the configured bound, Unavailable when the disk refuses.
        """
        loop = self._loop
        if loop is None:
            raise Unavailable("the buffer is not open")
        keys = () if dedup is None else (dedup,) if isinstance(dedup, str) else dedup
        size = len(records[0].value) if len(records) == 1 else sum(len(r.value) for r in records)
        submission = Submission(keys, records, loop.create_future(), size)
        self._pending.append(submission)  # ``_enqueue``, inlined: one call less per request
        self._notify()
        return submission.future

    async def submit_each(self, records: Sequence[Record], keys: Sequence[str], *,
                          cursor: tuple[str, bytes] | None = None) -> list[bool]:
        """Like ``submit``, with one dedup key per record: the records whose keys were
        seen within the window are skipped, the rest made durable together. Returns, per
        record, whether it was new. ``cursor`` (poller id, state) is saved in the same
        transaction: a poller's position moves exactly when its events become durable."""
        loop = self._loop
        if loop is None:
            raise Unavailable("the buffer is not open")
        flags: list[bool] = await self._enqueue(Submission(
            (), records, loop.create_future(), sum(len(r.value) for r in records),
            keys, cursor))
        return flags

    def _enqueue(self, submission: Submission) -> asyncio.Future[Any]:
        """Queue a submission for the next group commit; its future holds the outcome."""
        self._pending.append(submission)
        self._notify()
        return submission.future

    # -- the group commit (on the database thread) -----------------------------------

    def _group_commit(self, batch: list[Submission]) -> None:
        """Commit ``batch``, then hand every outcome back with one loop callback."""
        try:
            with self._db.writer:  # behind other processes' writers, not in SQLite's sleeps
                results = self._commit(batch)
        except Exception as exc:
            if self.commit_error is None:  # once per episode
                log.error("buffer_commit_failed", error=type(exc).__name__,
                          detail=str(exc)[:200], exc_info=exc)
            self.commit_error = f"{type(exc).__name__}: {str(exc)[:200]}"
            results = [Unavailable("the local buffer cannot write")] * len(batch)
        else:
            if self.commit_error is not None:
                log.info("buffer_commit_recovered")
            self.commit_error = None
        self._db.post(self._resolve, batch, results)

    def _resolve(self, batch: list[Submission], results: list[Outcome]) -> None:
        for sub, res in zip(batch, results, strict=True):
            if isinstance(res, Exception):
                settle(sub.future, None, res)
            else:
                settle(sub.future, res, None)
        self.wake.set()

    def _commit(self, batch: list[Submission]) -> list[Outcome]:
        conn = self._db.conn
        added = commit_all(conn, batch, self.settings)
        if added is not None:  # other processes move the stats too: read_stats refreshes them
            events, nbytes, claimed, now = added
            self.events += events
            self.bytes += nbytes
            self.dedup_bytes += claimed
            if self.oldest is None:
                self.oldest = now
            return [True] * len(batch)
        now = time.time()
        with transaction(conn):
            results = commit_each(conn, batch, self.settings, now)
            self.read_stats()
        return results

    # -- the relay's side ------------------------------------------------------------

    async def fetch(self, limit: int = 8) -> list[Segment]:
        """The oldest segments, in commit order."""
        return await self._db.read(self._fetch, limit)

    def _fetch(self, limit: int) -> list[Segment]:
        rows = self._db.conn.execute(
            "SELECT id, records, events, bytes FROM segments ORDER BY id LIMIT ?",
            (limit,)).fetchall()
        return [Segment(row[0], unpack(row[1]), row[2], row[3]) for row in rows]

    async def ack(self, segments: Sequence[Segment]) -> None:
        """Forget ``segments``: Kafka acknowledged (or dead-lettered) all their records."""
        if segments:
            await self._db.run(self._ack, [s.id for s in segments])

    def _ack(self, ids: list[int]) -> None:
        conn = self._db.conn
        # Losing a delete in a power cut only means publishing twice: no fsync needed.
        with transaction(conn, durable=False):
            conn.execute("DELETE FROM segments WHERE id IN (SELECT value FROM json_each(?))",
                         (orjson.dumps(ids),))  # the trigger moves the stats
            self._purge()
            self.read_stats()

    def _purge(self) -> None:
        """Delete one chunk of expired deduplication rows, through the expiry index, at
        most every ``PURGE_EVERY`` seconds: never a whole-table delete under the lock."""
        now = time.time()
        if now - self._last_purge >= PURGE_EVERY:
            self._db.conn.execute(_UNCOUNT, (DEDUP_ROW_BYTES, now, PURGE_CHUNK))
            self._db.conn.execute(_PURGE, (now, PURGE_CHUNK))
            self._last_purge = now

    async def purge_expired(self) -> None:
        """One chunk of expired deduplication rows, when nothing is being acknowledged."""
        def purge() -> None:
            with transaction(self._db.conn, durable=False):
                self._purge()
                self.read_stats()
        await self._db.run(purge)

    async def quarantine(self, record: Record, reason: str) -> None:
        """Keep a record that Kafka and the dead-letter topic both refused (fsynced)."""
        def keep() -> None:
            conn = self._db.conn
            with transaction(conn):
                conn.execute("INSERT INTO quarantine (record, reason, created)"
                             " VALUES (?, ?, ?)", (pack([record]), reason, time.time()))
                self.read_stats()
        await self._db.run(keep)

    async def quarantined_records(self, limit: int = 1000) -> list[Quarantined]:
        def read() -> list[Quarantined]:
            rows = self._db.conn.execute("SELECT id, record, reason, created FROM quarantine"
                                         " ORDER BY id LIMIT ?", (limit,)).fetchall()
            return [Quarantined(r[0], unpack(r[1])[0], r[2], r[3]) for r in rows]
        return await self._db.read(read)
