"""The local durable buffer: an SQLite outbox in WAL mode, with group commit.

A 2xx is answered only after the event's row is committed with ``synchronous=FULL``
(fsynced). A relay (``gateway.relay``) publishes rows to Kafka in id order and deletes
them once Kafka acknowledged them with ``acks=all``. Deduplication rows are written in
the same transaction as the outbox rows, so "seen" and "kept" can never disagree, and
SQLite's write lock makes the check atomic across worker processes.

All database work runs on one dedicated thread; requests queue their submissions and
one transaction commits everything that arrived meanwhile (group commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import orjson
import structlog

from gateway.config import BufferConfig
from gateway.errors import BufferFull, Unavailable

log = structlog.get_logger(__name__)
T = TypeVar("T")

MAX_BATCH = 2000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    headers BLOB NOT NULL,
    event_id TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dedup (key TEXT PRIMARY KEY, expires REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats (
    id INTEGER PRIMARY KEY CHECK (id = 1), events INTEGER NOT NULL, bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO stats VALUES (1, 0, 0);
CREATE TABLE IF NOT EXISTS lease (id INTEGER PRIMARY KEY CHECK (id = 1), owner TEXT,
    expires REAL NOT NULL);
INSERT OR IGNORE INTO lease VALUES (1, NULL, 0);
"""


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record to be: where it goes and what it carries."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    event_id: str
    connector_id: str


@dataclass(frozen=True, slots=True)
class StoredRecord:
    row_id: int
    record: Record


@dataclass(slots=True)
class _Submission:
    dedup_key: str | None
    records: Sequence[Record]
    future: asyncio.Future[bool]
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = sum(len(r.value) for r in self.records)


def _pack_headers(headers: tuple[tuple[str, bytes], ...]) -> bytes:
    return orjson.dumps([[k, v.decode("latin-1")] for k, v in headers])


def _unpack_headers(data: bytes) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, v.encode("latin-1")) for k, v in orjson.loads(data))


class Buffer:
    def __init__(self, path: Path, settings: BufferConfig) -> None:
        self.path = path
        self.settings = settings
        self.events = 0
        self.bytes = 0
        self.wake = asyncio.Event()  # set after each commit: the relay has work
        self._pending: list[_Submission] = []
        self._has_pending = asyncio.Event()
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="buffer-db")
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_purge = 0.0

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._run(self._open)
        self._task = asyncio.create_task(self._committer(), name="buffer-committer")

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=30.0)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(_SCHEMA)
        self._conn = conn
        self.events, self.bytes = conn.execute("SELECT events, bytes FROM stats").fetchone()

    async def close(self) -> None:
        if self._task is not None:
            while self._pending:
                self._has_pending.set()
                await asyncio.sleep(0.01)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._db.shutdown(wait=True)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    @property
    def has_room(self) -> bool:
        return self.events < self.settings.max_events and self.bytes < self.settings.max_bytes

    # -- the request path ------------------------------------------------------------

    async def submit(self, dedup_key: str | None, records: Sequence[Record]) -> bool:
        """Make ``records`` durable; False when ``dedup_key`` was seen within the window.

        Raises BufferFull at the configured bound, Unavailable when the disk refuses.
        """
        if self._task is None:
            raise Unavailable("the buffer is not open")
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(_Submission(dedup_key, records, fut))
        self._has_pending.set()
        return await fut

    async def _committer(self) -> None:
        while True:
            await self._has_pending.wait()
            self._has_pending.clear()
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                try:
                    results: list[bool | Exception] = await self._run(self._commit, batch)
                except Exception as exc:
                    log.error("buffer_commit_failed", error=type(exc).__name__, exc_info=exc)
                    results = [Unavailable("the local buffer cannot write")] * len(batch)
                for sub, res in zip(batch, results, strict=True):
                    if sub.future.done():
                        continue
                    if isinstance(res, Exception):
                        sub.future.set_exception(res)
                    else:
                        sub.future.set_result(res)
                self.wake.set()

    def _commit(self, batch: list[_Submission]) -> list[bool | Exception]:
        conn = self._conn
        assert conn is not None
        now = time.time()
        window = self.settings.dedup_window_seconds
        results: list[bool | Exception] = []
        rows: list[tuple[object, ...]] = []
        dedup_rows: list[tuple[str, float]] = []
        claimed: set[str] = set()
        conn.execute("BEGIN IMMEDIATE")
        try:
            events, nbytes = conn.execute("SELECT events, bytes FROM stats").fetchone()
            for sub in batch:
                key = sub.dedup_key if window > 0 else None
                if key is not None:
                    if key in claimed:
                        results.append(False)
                        continue
                    hit = conn.execute("SELECT expires FROM dedup WHERE key = ?",
                                       (key,)).fetchone()
                    if hit is not None and hit[0] > now:
                        results.append(False)
                        continue
                if (events + len(sub.records) > self.settings.max_events
                        or nbytes + sub.size > self.settings.max_bytes):
                    results.append(BufferFull("the local buffer is full",
                                              retry_after=self.settings.retry_after_seconds))
                    continue
                if key is not None:
                    claimed.add(key)
                    dedup_rows.append((key, now + window))
                events += len(sub.records)
                nbytes += sub.size
                for r in sub.records:
                    rows.append((r.topic, r.key, r.value, _pack_headers(r.headers),
                                 r.event_id, r.connector_id, now))
                results.append(True)
            if dedup_rows:
                conn.executemany("INSERT OR REPLACE INTO dedup VALUES (?, ?)", dedup_rows)
            if rows:
                conn.executemany(
                    "INSERT INTO outbox (topic, key, value, headers, event_id, connector_id,"
                    " created) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                conn.execute("UPDATE stats SET events = ?, bytes = ? WHERE id = 1",
                             (events, nbytes))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.events, self.bytes = events, nbytes
        return results

    # -- the relay's side ------------------------------------------------------------

    async def fetch(self, after_id: int, limit: int) -> list[StoredRecord]:
        return await self._run(self._fetch, after_id, limit)

    def _fetch(self, after_id: int, limit: int) -> list[StoredRecord]:
        assert self._conn is not None
        cur = self._conn.execute(
            "SELECT id, topic, key, value, headers, event_id, connector_id FROM outbox"
            " WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))
        return [
            StoredRecord(row[0], Record(row[1], row[2], row[3],
                                        _unpack_headers(row[4]),
                                        row[5], row[6]))
            for row in cur
        ]

    async def ack(self, upto_id: int) -> None:
        """Forget every row up to ``upto_id``: Kafka has acknowledged them."""
        await self._run(self._ack, upto_id)

    def _ack(self, upto_id: int) -> None:
        conn = self._conn
        assert conn is not None
        # Losing a delete in a power cut only means publishing twice: no fsync needed.
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                n, size = conn.execute(
                    "SELECT count(*), coalesce(sum(length(value)), 0) FROM outbox"
                    " WHERE id <= ?", (upto_id,)).fetchone()
                conn.execute("DELETE FROM outbox WHERE id <= ?", (upto_id,))
                conn.execute("UPDATE stats SET events = max(events - ?, 0),"
                             " bytes = max(bytes - ?, 0) WHERE id = 1", (n, size))
                now = time.time()
                if now - self._last_purge > 60:
                    conn.execute("DELETE FROM dedup WHERE expires < ?", (now,))
                    self._last_purge = now
                self.events, self.bytes = conn.execute(
                    "SELECT events, bytes FROM stats").fetchone()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.execute("PRAGMA synchronous=FULL")

    async def refresh_stats(self) -> None:
        def read() -> None:
            assert self._conn is not None
            self.events, self.bytes = self._conn.execute(
                "SELECT events, bytes FROM stats").fetchone()
        await self._run(read)

    async def acquire_lease(self, owner: str, ttl: float) -> bool:
        """Only one process relays at a time; a dead holder's lease expires after ``ttl``."""
        def take() -> bool:
            assert self._conn is not None
            now = time.time()
            cur = self._conn.execute(
                "UPDATE lease SET owner = ?, expires = ? WHERE id = 1 AND"
                " (owner = ? OR owner IS NULL OR expires < ?)", (owner, now + ttl, owner, now))
            return cur.rowcount == 1
        return await self._run(take)

    async def release_lease(self, owner: str) -> None:
        def release() -> None:
            assert self._conn is not None
            self._conn.execute("UPDATE lease SET owner = NULL, expires = 0 WHERE owner = ?",
                               (owner,))
        await self._run(release)
