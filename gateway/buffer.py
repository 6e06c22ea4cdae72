"""The local durable buffer: an SQLite outbox in WAL mode, with group commit.

A 2xx is answered only after the event is committed with ``synchronous=FULL``
(fsynced). A relay (``gateway.relay``) publishes the buffer to Kafka in commit order and
deletes what Kafka acknowledged with ``acks=all``. Deduplication rows are written in the
same transaction as the events, so "seen" and "kept" can never disagree, and SQLite's
write lock makes the check atomic across worker processes.

All database work runs on one dedicated thread; requests queue their submissions and
one transaction commits everything that arrived meanwhile (group commit), the next one
starting as soon as the last is done. A group commit is stored as one *segment* row
holding its records; triggers keep the stats and the deduplication rows. When every
submission in it is new and fits, the whole commit is one ``INSERT`` (``_commit_all``):
every SQLite call hands the GIL to the event loop and must wait to get it back, so the
fewer calls, the sooner the 2xx. Otherwise one explicit transaction sorts the batch out
submission by submission (``_commit_each``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import orjson
import structlog

from gateway.config import BufferConfig
from gateway.errors import BufferFull, Unavailable

log = structlog.get_logger(__name__)
T = TypeVar("T")

MAX_BATCH = 2000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    records BLOB NOT NULL,
    events INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    created REAL NOT NULL,
    dedup_keys TEXT,  -- JSON array: the deduplication keys this commit claimed
    dedup_expires REAL
);
CREATE TABLE IF NOT EXISTS dedup (key TEXT PRIMARY KEY, expires REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_by_expiry ON dedup (expires);
CREATE TABLE IF NOT EXISTS stats (
    id INTEGER PRIMARY KEY CHECK (id = 1), events INTEGER NOT NULL, bytes INTEGER NOT NULL,
    dedup_bytes INTEGER NOT NULL DEFAULT 0);
INSERT OR IGNORE INTO stats VALUES (1, 0, 0, 0);
-- Records Kafka refused for good whose dead letter was refused too: kept, never dropped.
CREATE TABLE IF NOT EXISTS quarantine (id INTEGER PRIMARY KEY AUTOINCREMENT,
    record BLOB NOT NULL, reason TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS lease (id INTEGER PRIMARY KEY CHECK (id = 1), owner TEXT,
    expires REAL NOT NULL);
INSERT OR IGNORE INTO lease VALUES (1, NULL, 0);
CREATE TABLE IF NOT EXISTS cursors (poller TEXT PRIMARY KEY, state BLOB NOT NULL,
    updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS poller_status (id INTEGER PRIMARY KEY CHECK (id = 1),
    state BLOB NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS relay_status (id INTEGER PRIMARY KEY CHECK (id = 1),
    kafka_ok INTEGER NOT NULL, error TEXT, published INTEGER NOT NULL, updated REAL NOT NULL);
INSERT OR IGNORE INTO relay_status VALUES (1, 0, 'no relay has run yet', 0, 0);
CREATE TABLE IF NOT EXISTS worker_metrics (worker TEXT PRIMARY KEY, snapshot BLOB NOT NULL,
    updated REAL NOT NULL);
"""

# Stats and deduplication rows follow the segments by trigger, so that a group commit is
# four statements (BEGIN, one read, one insert, COMMIT): each statement hands the GIL to
# the event loop and back, and a busy loop makes every hand-back cost.
# Deduplication rows count toward buffer.max_bytes: each costs its key plus
# DEDUP_ROW_BYTES (expiry, index entries, page overhead, roughly). One UPDATE per segment
# adds the bytes of the keys it claims that are not there yet (a stale row being replaced
# is counted already); purges subtract what they delete.
_TRIGGERS = [
    "DROP TRIGGER IF EXISTS segment_added",
    "DROP TRIGGER IF EXISTS dedup_added",  # per-row triggers of a development version
    "DROP TRIGGER IF EXISTS dedup_removed",
    """CREATE TRIGGER segment_added AFTER INSERT ON segments BEGIN
    UPDATE stats SET events = events + NEW.events, bytes = bytes + NEW.bytes,
        dedup_bytes = dedup_bytes + coalesce((SELECT sum(length(value) + 48)
            FROM json_each(NEW.dedup_keys) WHERE value NOT IN (SELECT key FROM dedup)), 0)
        WHERE id = 1;
    INSERT OR REPLACE INTO dedup (key, expires)
        SELECT value, NEW.dedup_expires FROM json_each(NEW.dedup_keys);
END""",
    """CREATE TRIGGER IF NOT EXISTS segment_removed AFTER DELETE ON segments BEGIN
    UPDATE stats SET events = events - OLD.events, bytes = bytes - OLD.bytes WHERE id = 1;
END""",
]
DEDUP_ROW_BYTES = 48
_CLAIM = """UPDATE stats SET dedup_bytes = dedup_bytes + coalesce((SELECT sum(length(value) + ?)
    FROM json_each(?) WHERE value NOT IN (SELECT key FROM dedup)), 0) WHERE id = 1"""
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

_INSERT_IF_NEW = """
INSERT INTO segments (records, events, bytes, created, dedup_keys, dedup_expires)
SELECT :records, :events, :bytes, :now, :keys, :expires FROM stats
WHERE events + :events <= :max_events
  AND bytes + dedup_bytes + :bytes + :claimed <= :max_bytes
  AND NOT EXISTS (SELECT 1 FROM dedup WHERE expires > :now
                  AND key IN (SELECT value FROM json_each(coalesce(:keys, '[]'))))
"""


@dataclass(frozen=True, slots=True)
class RelayStatus:
    """What the relay (possibly another process) last said about Kafka."""

    kafka_ok: bool
    error: str | None
    published: int
    updated: float
    leader: bool = False  # a relay holds the lease now (read from the lease, not written)


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A record Kafka refused for good, whose dead letter was refused as well."""

    id: int
    record: Record
    reason: str
    created: float


class Record(NamedTuple):
    """One Kafka record to be: where it goes, what it carries, what its headers say.
    (A named tuple: built once per event, it costs half a frozen dataclass.)"""

    topic: str
    key: bytes
    value: bytes
    event_id: str
    connector_id: str
    event_type: str
    source: str

    def headers(self) -> list[tuple[str, bytes]]:
        return [("content-type", b"application/json"), ("event-id", self.event_id.encode()),
                ("event-type", self.event_type.encode()),
                ("event-source", self.source.encode()),
                ("connector-id", self.connector_id.encode())]


_LENGTHS = struct.Struct("!7I")


def pack(records: Sequence[Record]) -> bytes:
    """Records as one blob: per record its seven field lengths, then the seven fields."""
    parts: list[bytes] = []
    for r in records:
        fields = (r.topic.encode(), r.key, r.value, r.event_id.encode(),
                  r.connector_id.encode(), r.event_type.encode(), r.source.encode())
        parts.append(_LENGTHS.pack(*map(len, fields)))
        parts.extend(fields)
    return b"".join(parts)


def unpack(blob: bytes) -> list[Record]:
    out = []
    pos = 0
    while pos < len(blob):
        lengths = _LENGTHS.unpack_from(blob, pos)
        pos += _LENGTHS.size
        f = []
        for n in lengths:
            f.append(blob[pos:pos + n])
            pos += n
        out.append(Record(f[0].decode(), f[1], f[2], f[3].decode(), f[4].decode(),
                          f[5].decode(), f[6].decode()))
    return out


@dataclass(frozen=True, slots=True)
class Segment:
    """One group commit's records, as the relay reads them back."""

    id: int
    records: list[Record]
    events: int
    bytes: int


@dataclass(slots=True)
class _Submission:
    dedup_keys: Sequence[str]  # a duplicate when any was seen; all are claimed
    records: Sequence[Record]
    future: asyncio.Future[Any]
    size: int
    record_keys: Sequence[str] | None = None  # one dedup key per record (submit_each)
    cursor: tuple[str, bytes] | None = None  # a poller's state, saved with the records


_Call = tuple[Callable[..., Any], tuple[object, ...], "asyncio.Future[Any]"]
_STOP: Any = object()  # queued by close(): the database thread exits


@contextmanager
def _transaction(conn: sqlite3.Connection, *, durable: bool = True) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any error. ``durable=False``
    skips the fsync at commit, for writes whose loss in a power cut costs nothing (a
    delete redone, a status rewritten a second later)."""
    if not durable:
        conn.execute("PRAGMA synchronous=NORMAL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        if not durable:
            conn.execute("PRAGMA synchronous=FULL")


def _settle(future: asyncio.Future[Any], result: object, error: BaseException | None
            ) -> None:
    if future.done():  # the awaiting request went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _post(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: object) -> None:
    """Run ``fn(*args)`` on the event loop, from the database thread."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: nobody waits any more
        pass


class Buffer:
    def __init__(self, path: Path, settings: BufferConfig) -> None:
        self.path = path
        self.settings = settings
        self.events = 0
        self.bytes = 0
        self.dedup_bytes = 0  # deduplication rows count toward max_bytes too
        self.oldest: float | None = None  # when the oldest buffered event was committed
        self.quarantined = 0
        # The last commit's failure (None once a commit succeeds): /readyz reports it.
        self.commit_error: str | None = None
        self.wake = asyncio.Event()  # set after each commit: the relay has work
        self._pending: deque[_Submission] = deque()
        self._calls: deque[_Call] = deque()
        self._work = threading.Event()  # set when the thread has something to do
        self._thread: threading.Thread | None = None
        self._accepting = False
        self._conn: sqlite3.Connection | None = None
        self._last_purge = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._serve, name="buffer-db", daemon=True)
        self._thread.start()
        await self._run(self._open)
        self._accepting = True

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=30.0)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(segments)")}
        if "dedup_keys" not in columns:  # a buffer written before the triggers
            conn.executescript("ALTER TABLE segments ADD COLUMN dedup_keys TEXT;"
                               " ALTER TABLE segments ADD COLUMN dedup_expires REAL;")
        if "dedup_bytes" not in {row[1] for row in conn.execute("PRAGMA table_info(stats)")}:
            with _transaction(conn):  # a buffer written before dedup rows were counted
                conn.execute("ALTER TABLE stats ADD COLUMN dedup_bytes INTEGER NOT NULL"
                             " DEFAULT 0")
                conn.execute("UPDATE stats SET dedup_bytes = (SELECT coalesce(sum("
                             "length(key) + ?), 0) FROM dedup)", (DEDUP_ROW_BYTES,))
        with _transaction(conn):  # atomic: other processes may be committing meanwhile
            for statement in _TRIGGERS:
                conn.execute(statement)
        self._conn = conn
        self._read_stats()

    def _read_stats(self) -> None:
        """Refresh the counts from the database (other processes move them too)."""
        assert self._conn is not None
        self.events, self.bytes, self.dedup_bytes, self.oldest, self.quarantined = (
            self._conn.execute(
                "SELECT events, bytes, dedup_bytes, (SELECT created FROM segments ORDER BY id"
                " LIMIT 1), (SELECT count(*) FROM quarantine) FROM stats").fetchone())

    async def close(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._accepting = False
        self._calls.append(_STOP)
        self._work.set()
        await asyncio.to_thread(thread.join)
        self._thread = None

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on the database thread."""
        if self._thread is None or self._loop is None:
            raise Unavailable("the buffer is not open")
        future: asyncio.Future[T] = self._loop.create_future()
        self._calls.append((fn, args, future))
        self._wake()
        return await future

    def _wake(self) -> None:
        if not self._work.is_set():
            self._work.set()

    def _serve(self) -> None:
        """The database thread. After each group commit it takes what queued up meanwhile
        straight away, and hands the outcomes back with one loop callback per commit."""
        loop = self._loop
        assert loop is not None
        while True:
            self._work.wait()
            self._work.clear()  # anything queued from here on sets it again
            while self._calls or self._pending:
                if self._calls:
                    call = self._calls.popleft()
                    if call is not _STOP:
                        fn, args, future = call
                        try:
                            result, error = fn(*args), None
                        except Exception as exc:
                            result, error = None, exc
                        _post(loop, _settle, future, result, error)
                    elif self._pending:  # what was queued before close() is committed first
                        self._calls.append(_STOP)
                    else:
                        if self._conn is not None:
                            self._conn.close()
                            self._conn = None
                        return
                if self._pending:
                    pending = self._pending
                    batch = [pending.popleft() for _ in range(min(len(pending), MAX_BATCH))]
                    try:
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
                    _post(loop, self._resolve, batch, results)

    def _resolve(self, batch: list[_Submission],
                 results: list[bool | list[bool] | Exception]) -> None:
        for sub, res in zip(batch, results, strict=True):
            if isinstance(res, Exception):
                _settle(sub.future, None, res)
            else:
                _settle(sub.future, res, None)
        self.wake.set()

    @property
    def has_room(self) -> bool:
        return (self.events < self.settings.max_events
                and self.bytes + self.dedup_bytes < self.settings.max_bytes)

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
        if not self._accepting or self._loop is None:
            raise Unavailable("the buffer is not open")
        keys = () if dedup is None else (dedup,) if isinstance(dedup, str) else dedup
        size = len(records[0].value) if len(records) == 1 else sum(len(r.value) for r in records)
        return self._enqueue(_Submission(keys, records, self._loop.create_future(), size))

    async def submit_each(self, records: Sequence[Record], keys: Sequence[str], *,
                          cursor: tuple[str, bytes] | None = None) -> list[bool]:
        """Like ``submit``, with one dedup key per record: the records whose keys were
        seen within the window are skipped, the rest made durable together. Returns, per
        record, whether it was new. ``cursor`` (poller id, state) is saved in the same
        transaction: a poller's position moves exactly when its events become durable."""
        if not self._accepting or self._loop is None:
            raise Unavailable("the buffer is not open")
        flags: list[bool] = await self._enqueue(_Submission(
            (), records, self._loop.create_future(), sum(len(r.value) for r in records),
            keys, cursor))
        return flags

    def _enqueue(self, submission: _Submission) -> asyncio.Future[Any]:
        """Queue a submission for the next group commit; its future holds the outcome."""
        self._pending.append(submission)
        self._wake()
        return submission.future

    def _commit(self, batch: list[_Submission]) -> list[bool | list[bool] | Exception]:
        if self._commit_all(batch):
            return [True] * len(batch)
        return self._commit_each(batch)

    def _commit_all(self, batch: list[_Submission]) -> bool:
        """The common case in one statement: every submission new, and room for all.

        One ``INSERT`` in autocommit mode checks the keys and the bounds, inserts the
        segment (its triggers add the stats and the keys) and commits: SQLite runs the
        whole transaction, fsync included, within one release of the GIL, where an
        explicit transaction costs four, each a wait for a busy event loop to hand the GIL
        back. False (nothing written) when a key was seen, the buffer is too full, or the
        batch is not plain deliveries; ``_commit_each`` then sorts it out.
        """
        if any(s.record_keys is not None or s.cursor is not None or not s.records
               for s in batch):
            return False
        window = self.settings.dedup_window_seconds
        keys = [k for s in batch for k in s.dedup_keys] if window else []
        if len(set(keys)) != len(keys):  # the same delivery twice in one batch
            return False
        assert self._conn is not None
        records = [r for s in batch for r in s.records]
        size = sum(s.size for s in batch)
        now = time.time()
        keys_json = orjson.dumps(keys)
        claimed = sum(len(k) for k in keys) + DEDUP_ROW_BYTES * len(keys)
        inserted = self._conn.execute(_INSERT_IF_NEW, {
            "records": pack(records), "events": len(records), "bytes": size, "now": now,
            "keys": keys_json if keys else None, "expires": now + window,
            "max_events": self.settings.max_events, "max_bytes": self.settings.max_bytes,
            "claimed": claimed,
        }).rowcount == 1
        if inserted:  # other processes move the stats too: read_status refreshes them
            self.events += len(records)
            self.bytes += size
            self.dedup_bytes += claimed
            if self.oldest is None:
                self.oldest = now
        return inserted

    def _commit_each(self, batch: list[_Submission]) -> list[bool | list[bool] | Exception]:
        """Submission by submission, in one transaction: duplicates answered, a full
        buffer refusing those that do not fit, poller cursors saved."""
        conn = self._conn
        assert conn is not None
        now = time.time()
        window = self.settings.dedup_window_seconds
        limits = self.settings
        results: list[bool | list[bool] | Exception] = []
        records: list[Record] = []
        fresh: list[str] = []
        with _transaction(conn):
            keys = [k for s in batch for k in s.dedup_keys] if window else []
            if window:
                keys.extend(k for s in batch if s.record_keys for k in s.record_keys)
            events, nbytes, dedup_bytes, seen_keys = conn.execute(
                "SELECT events, bytes, dedup_bytes, (SELECT json_group_array(key) FROM dedup"
                " WHERE expires > ? AND key IN (SELECT value FROM json_each(?))) FROM stats",
                (now, orjson.dumps(keys))).fetchone()
            seen: set[str] = set(orjson.loads(seen_keys))
            # The bound counts the deduplication rows this commit adds, as the table will.
            nbytes += dedup_bytes
            size = 0
            for sub in batch:
                if sub.record_keys is not None:
                    flags, mine = [], set()
                    for k in sub.record_keys:  # a key twice in one submission counts once
                        flags.append(not window or (k not in seen and k not in mine))
                        mine.add(k)
                    kept = [r for r, new in zip(sub.records, flags, strict=True) if new]
                    kept_size = sum(len(r.value) for r in kept) + sum(
                        len(k) + DEDUP_ROW_BYTES for k, new
                        in zip(sub.record_keys, flags, strict=True) if new and window)
                    if kept and (events + len(kept) > limits.max_events
                                 or nbytes + kept_size > limits.max_bytes):
                        results.append(BufferFull("the local buffer is full",
                                                  retry_after=limits.retry_after_seconds))
                        continue
                    if window:
                        for k, new in zip(sub.record_keys, flags, strict=True):
                            if new:
                                seen.add(k)
                                fresh.append(k)
                    events += len(kept)
                    nbytes += kept_size
                    size += sum(len(r.value) for r in kept)
                    records.extend(kept)
                    results.append(flags)
                    if sub.cursor is not None:
                        conn.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?, ?)",
                                     (*sub.cursor, now))
                    continue
                claims = sub.dedup_keys if window else ()
                if any(k in seen for k in claims):
                    results.append(False)
                    continue
                claimed = sum(len(k) + DEDUP_ROW_BYTES for k in claims)
                if (events + len(sub.records) > limits.max_events
                        or nbytes + sub.size + claimed > limits.max_bytes):
                    results.append(BufferFull("the local buffer is full",
                                              retry_after=limits.retry_after_seconds))
                    continue
                seen.update(claims)
                fresh.extend(claims)
                events += len(sub.records)
                nbytes += sub.size + claimed
                size += sub.size
                records.extend(sub.records)
                results.append(True)
            if records:  # the triggers add the stats and the deduplication rows
                conn.execute("INSERT INTO segments (records, events, bytes, created, dedup_keys,"
                             " dedup_expires) VALUES (?, ?, ?, ?, ?, ?)",
                             (pack(records), len(records), size, now,
                              orjson.dumps(fresh) if fresh else None, now + window))
            elif fresh:  # submissions without records still claim their keys
                fresh_json = orjson.dumps(fresh)
                conn.execute(_CLAIM, (DEDUP_ROW_BYTES, fresh_json))
                conn.execute("INSERT OR REPLACE INTO dedup (key, expires)"
                             " SELECT value, ? FROM json_each(?)", (now + window, fresh_json))
            self._read_stats()
        return results

    # -- the relay's side ------------------------------------------------------------

    async def fetch(self, limit: int = 8) -> list[Segment]:
        """The oldest segments, in commit order."""
        return await self._run(self._fetch, limit)

    def _fetch(self, limit: int) -> list[Segment]:
        assert self._conn is not None
        rows = self._conn.execute(
            "SELECT id, records, events, bytes FROM segments ORDER BY id LIMIT ?",
            (limit,)).fetchall()
        return [Segment(row[0], unpack(row[1]), row[2], row[3]) for row in rows]

    async def ack(self, segments: Sequence[Segment]) -> None:
        """Forget ``segments``: Kafka acknowledged (or dead-lettered) all their records."""
        if segments:
            await self._run(self._ack, [s.id for s in segments])

    def _ack(self, ids: list[int]) -> None:
        conn = self._conn
        assert conn is not None
        # Losing a delete in a power cut only means publishing twice: no fsync needed.
        with _transaction(conn, durable=False):
            conn.execute("DELETE FROM segments WHERE id IN (SELECT value FROM json_each(?))",
                         (orjson.dumps(ids),))  # the trigger moves the stats
            self._purge(conn)
            self._read_stats()

    def _purge(self, conn: sqlite3.Connection) -> None:
        """Delete one chunk of expired deduplication rows, through the expiry index, at
        most every ``PURGE_EVERY`` seconds: never a whole-table delete under the lock."""
        now = time.time()
        if now - self._last_purge >= PURGE_EVERY:
            conn.execute(_UNCOUNT, (DEDUP_ROW_BYTES, now, PURGE_CHUNK))
            conn.execute(_PURGE, (now, PURGE_CHUNK))
            self._last_purge = now

    async def purge_expired(self) -> None:
        """One chunk of expired deduplication rows, when nothing is being acknowledged."""
        def purge() -> None:
            assert self._conn is not None
            with _transaction(self._conn, durable=False):
                self._purge(self._conn)
                self._read_stats()
        await self._run(purge)

    async def quarantine(self, record: Record, reason: str) -> None:
        """Keep a record that Kafka and the dead-letter topic both refused (fsynced)."""
        def keep() -> None:
            assert self._conn is not None
            with _transaction(self._conn):
                self._conn.execute("INSERT INTO quarantine (record, reason, created)"
                                   " VALUES (?, ?, ?)", (pack([record]), reason, time.time()))
                self._read_stats()
        await self._run(keep)

    async def quarantined_records(self, limit: int = 1000) -> list[Quarantined]:
        def read() -> list[Quarantined]:
            assert self._conn is not None
            rows = self._conn.execute("SELECT id, record, reason, created FROM quarantine"
                                      " ORDER BY id LIMIT ?", (limit,)).fetchall()
            return [Quarantined(r[0], unpack(r[1])[0], r[2], r[3]) for r in rows]
        return await self._run(read)

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

    async def write_status(self, status: RelayStatus) -> None:
        def write() -> None:
            conn = self._conn
            assert conn is not None
            with _transaction(conn, durable=False):
                conn.execute(
                    "UPDATE relay_status SET kafka_ok = ?, error = ?, published = ?,"
                    " updated = ? WHERE id = 1",
                    (int(status.kafka_ok), status.error, status.published, status.updated))
        await self._run(write)

    async def read_status(self) -> RelayStatus:
        """The relay's status, and (as a side effect) fresh buffer stats."""
        def read() -> RelayStatus:
            assert self._conn is not None
            self._read_stats()
            row = self._conn.execute(
                "SELECT kafka_ok, error, published, updated, (SELECT owner IS NOT NULL AND"
                " expires > ? FROM lease) FROM relay_status", (time.time(),)).fetchone()
            return RelayStatus(bool(row[0]), row[1], row[2], row[3], bool(row[4]))
        return await self._run(read)

    async def share_metrics(self, worker: str, snapshot: bytes, oldest: float) -> list[bytes]:
        """Store ``worker``'s metrics snapshot; forget those not updated since ``oldest``;
        return the other workers' snapshots."""
        def share() -> list[bytes]:
            conn = self._conn
            assert conn is not None
            with _transaction(conn, durable=False):  # counters: no fsync needed
                conn.execute("INSERT OR REPLACE INTO worker_metrics VALUES (?, ?, ?)",
                             (worker, snapshot, time.time()))
                conn.execute("DELETE FROM worker_metrics WHERE updated < ?", (oldest,))
                rows = conn.execute("SELECT snapshot FROM worker_metrics WHERE worker != ?",
                                    (worker,)).fetchall()
            return [bytes(row[0]) for row in rows]
        return await self._run(share)

    async def write_pollers(self, view: dict[str, Any]) -> None:
        def write() -> None:
            assert self._conn is not None
            self._conn.execute("INSERT OR REPLACE INTO poller_status VALUES (1, ?, ?)",
                               (orjson.dumps(view), time.time()))
        await self._run(write)

    async def read_pollers(self) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            assert self._conn is not None
            row = self._conn.execute("SELECT state, updated FROM poller_status").fetchone()
            if row is None:
                return {}
            view: dict[str, Any] = orjson.loads(row[0])
            for health in view.values():
                health["reported_seconds_ago"] = round(time.time() - row[1], 1)
            return view
        return await self._run(read)

    async def load_cursor(self, poller: str) -> bytes | None:
        def read() -> bytes | None:
            assert self._conn is not None
            row = self._conn.execute("SELECT state FROM cursors WHERE poller = ?",
                                     (poller,)).fetchone()
            return None if row is None else bytes(row[0])
        return await self._run(read)

    async def release_lease(self, owner: str) -> None:
        def release() -> None:
            assert self._conn is not None
            self._conn.execute("UPDATE lease SET owner = NULL, expires = 0 WHERE owner = ?",
                               (owner,))
        await self._run(release)
