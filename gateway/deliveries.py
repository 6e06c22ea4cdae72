"""The delivery store: every request's outcome, kept to be found and replayed.

``<data_dir>/deliveries.db`` (SQLite, WAL, shared by every process of the gateway): one
row per outcome of a request (accepted, duplicate, rejected with its reason, handshake,
filtered, dead-lettered, failed) with its headers (the secret-bearing ones redacted, as
in dead letters), and one row per event the relay saw Kafka acknowledge, with its topic,
partition and offset. The raw bodies (the connector's personal data handled first, as
everywhere: ``governance``) go to ``<data_dir>/deliveries.bodies/<connector>/<hour>.seg``,
appended in one write per flush; a row says where its body is. Retention deletes whole
hours of a connector's bodies: a shorter ``retention_days`` is kept to the hour.

The request path only appends to a list; a writer task hands the list to a thread that
inserts it in one transaction every ``FLUSH_SECONDS`` (at most ``MAX_PENDING`` rows wait:
past that the newest are dropped and counted, never the request). Retention
(``retention.days``, a connector's ``governance.retention_days``, and
``retention.max_bytes``) is enforced every ``PRUNE_SECONDS``: old rows first, then the
oldest until the file fits.
"""

from __future__ import annotations

import asyncio
import calendar
import os
import sqlite3
import threading
import time
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import structlog
from pydantic import BaseModel, ConfigDict, Field

from gateway.tasks import cancel, supervised

log = structlog.get_logger(__name__)

FLUSH_SECONDS = 0.2
PRUNE_SECONDS = 60.0
MAX_PENDING = 50_000
PAGE = 100  # rows per page of a search, at most
SCAN = 200_000  # rows a search reads at most (a text in the body is looked for in each)

# Rows go in in time order, so a time maps to a rowid by a binary search (``_first``):
# one index per table (a request's id, an event's id) is all the writes pay for.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    request_id TEXT NOT NULL, outcome TEXT NOT NULL, at REAL NOT NULL,
    connector_id TEXT, reason TEXT, event_ids TEXT NOT NULL, method TEXT, path TEXT,
    headers TEXT NOT NULL, segment TEXT NOT NULL, start INTEGER NOT NULL,
    length INTEGER NOT NULL, handled INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS deliveries_request ON deliveries (request_id);
CREATE TABLE IF NOT EXISTS published (
    event_id TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS published_event ON published (event_id);
"""


class RetentionConfig(BaseModel):
    """Top-level ``retention``: how long and how much the delivery store keeps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: float = Field(default=7.0, gt=0)
    max_bytes: int = Field(default=1 << 30, ge=1 << 20)


@dataclass(frozen=True, slots=True)
class Delivery:
    request_id: str
    outcome: str
    at: float
    connector_id: str | None
    reason: str | None
    event_ids: list[str]
    method: str | None
    path: str | None
    headers: dict[str, str]
    body: bytes
    handled: bool  # its personal data was handled before it was stored

    def summary(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "outcome": self.outcome, "at": self.at,
                "connector_id": self.connector_id, "reason": self.reason,
                "event_ids": self.event_ids, "bytes": len(self.body)}


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # an operator's record: a crash may lose the last
    db.execute("PRAGMA auto_vacuum=INCREMENTAL")
    db.executescript(_SCHEMA)
    return db


class DeliveryStore:
    """One process's side of the store: ``record`` and ``published`` from the event
    loop, everything else on its own thread."""

    def __init__(self, path: Path, retention: RetentionConfig,
                 connector_days: Mapping[str, float] | None = None,
                 connectors: Collection[str] = ()) -> None:
        self.path = path
        self.segments = path.with_suffix(".bodies")  # <connector>/<hour>.seg: the bodies
        self.retention = retention
        self.connector_days = dict(connector_days or {})
        self.connectors = frozenset(connectors)  # others' bodies share one directory
        self.dropped = 0
        self._rows: list[tuple[Any, ...]] = []
        self._published: list[tuple[str, str, int, int, float]] = []
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deliveries")
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    # -- the request path and the relay: appends only ------------------------------------

    def record(self, request_id: str, outcome: str, connector_id: str | None,
               reason: str | None, event_ids: list[str], method: str | None,
               path: str | None, headers: Mapping[str, str], body: bytes,
               handled: bool = False) -> None:
        if len(self._rows) >= MAX_PENDING:
            self.dropped += 1
            return
        self._rows.append((request_id, outcome, time.time(), connector_id, reason,
                           orjson.dumps(event_ids).decode(), method, path,
                           orjson.dumps(dict(headers)).decode(), body, int(handled)))

    def published(self, event_id: str, topic: str, partition: int, offset: int) -> None:
        if len(self._published) >= MAX_PENDING:
            self.dropped += 1
            return
        self._published.append((event_id, topic, partition, offset, time.time()))

    # -- lifecycle ----------------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await self._run(_connect, self.path)
        self._tasks = [supervised("deliveries-writer", self._write_loop),
                       supervised("deliveries-retention", self._prune_loop)]

    async def close(self) -> None:
        for task in self._tasks:
            await cancel(task)
        self._tasks = []
        await self.flush()
        if self._db is not None:
            db, self._db = self._db, None
            await self._run(db.close)
        self._io.shutdown(wait=True)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    async def flush(self) -> None:
        rows, self._rows = self._rows, []
        published, self._published = self._published, []
        if (rows or published) and self._db is not None:
            await self._run(self._insert, rows, published)

    def _insert(self, rows: list[tuple[Any, ...]],
                published: list[tuple[str, str, int, int, float]]) -> None:
        assert self._db is not None
        rows = self._append_bodies(rows)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO deliveries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
                self._db.executemany(
                    "INSERT INTO published VALUES (?,?,?,?,?)", published)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _segment(self, connector_id: str | None, at: float) -> str:
        """Where a body goes: its connector's directory (ids not configured share one:
        a URL can name any), one file per hour (retention deletes whole files)."""
        folder = connector_id if connector_id in self.connectors else "_other"
        return f"{folder}/{time.strftime('%Y%m%d%H', time.gmtime(at))}.seg"

    def _append_bodies(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The rows with each body appended to its segment file (one write per file per
        flush; ``O_APPEND`` places it atomically beside other processes' writes), and
        replaced by (segment, start, length)."""
        groups: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            groups.setdefault(self._segment(row[3], row[2]), []).append(i)
        placed: dict[int, tuple[str, int, int]] = {}
        for segment, indexes in groups.items():
            target = self.segments / segment
            target.parent.mkdir(parents=True, exist_ok=True)
            data = b"".join(rows[i][9] for i in indexes)
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                written = 0
                while written < len(data):  # a short write continues where it stopped
                    written += os.write(fd, memoryview(data)[written:])
                start = os.lseek(fd, 0, os.SEEK_CUR) - len(data)
            finally:
                os.close(fd)
            for i in indexes:
                length = len(rows[i][9])
                placed[i] = (segment, start, length)
                start += length
        return [(*row[:9], *placed[i], row[10]) for i, row in enumerate(rows)]

    def _body(self, segment: str, start: int, length: int) -> bytes:
        try:
            fd = os.open(self.segments / segment, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return b""  # expired
        try:
            return os.pread(fd, length, start)
        finally:
            os.close(fd)

    async def _write_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()

    async def _prune_loop(self) -> None:
        while True:
            removed = await self._run(self.prune, time.time())
            if removed:
                log.info("deliveries_expired", rows=removed)
            await asyncio.sleep(PRUNE_SECONDS)

    def prune(self, now: float) -> int:
        """Rows past their retention, then the oldest until the file fits max_bytes."""
        assert self._db is not None
        with self._lock:
            db = self._db
            cutoff = now - self.retention.days * 86400
            removed = db.execute("DELETE FROM deliveries WHERE rowid < ?",
                                 (self._first("deliveries", cutoff),)).rowcount
            for cid, days in self.connector_days.items():
                removed += db.execute(
                    "DELETE FROM deliveries WHERE rowid < ? AND connector_id = ?",
                    (self._first("deliveries", now - days * 86400), cid)).rowcount
            db.execute("DELETE FROM published WHERE rowid < ?",
                       (self._first("published", cutoff),))
            segments = self._expire_segments(now)
            while segments and self._bytes(segments) > self.retention.max_bytes:
                oldest = segments.pop(0)  # the whole hour goes, its rows with it
                removed += db.execute("DELETE FROM deliveries WHERE segment = ?",
                                      (oldest[1],)).rowcount
                (self.segments / oldest[1]).unlink(missing_ok=True)
            if removed:
                db.execute("PRAGMA incremental_vacuum")
            return removed

    def _expire_segments(self, now: float) -> list[tuple[str, str, int]]:
        """Deletes the segment files past their connector's retention (whole hours);
        returns the others, oldest first, as (hour, segment, size)."""
        left = []
        for file in self.segments.glob("*/*.seg"):
            folder, hour = file.parent.name, file.stem
            days = self.connector_days.get(folder, self.retention.days)
            try:
                ends = calendar.timegm(time.strptime(hour, "%Y%m%d%H")) + 3600
                size = file.stat().st_size
            except (ValueError, OSError):
                continue
            if ends < now - days * 86400:
                file.unlink(missing_ok=True)
            else:
                left.append((hour, f"{folder}/{file.name}", size))
        return sorted(left)

    def _first(self, table: str, at: float) -> int:
        """The first rowid of ``table`` at or after time ``at`` (one past the last row
        when none is): a binary search over rowids, rows being in time order."""
        assert self._db is not None
        db = self._db
        assert table in ("deliveries", "published")  # names, never input
        low, high = db.execute(
            f"SELECT min(rowid), max(rowid) FROM {table}").fetchone()  # noqa: S608
        if low is None:
            return 0
        high += 1
        while low < high:
            mid = (low + high) // 2
            row = db.execute(f"SELECT at FROM {table} WHERE rowid >= ? ORDER BY rowid"  # noqa: S608
                             " LIMIT 1", (mid,)).fetchone()
            if row is not None and row[0] < at:
                low = mid + 1
            else:
                high = mid
        return int(low)

    def _bytes(self, segments: list[tuple[str, str, int]] | None = None) -> int:
        """The store's size: the database's used pages and the segment files."""
        assert self._db is not None
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        size = self._db.execute("PRAGMA page_size").fetchone()[0]
        bodies = sum(s[2] for s in segments) if segments is not None else sum(
            f.stat().st_size for f in self.segments.glob("*/*.seg"))
        return int((pages - free) * size) + bodies

    # -- reading (the admin API) ---------------------------------------------------------

    async def search(self, **filters: Any) -> list[Delivery]:
        await self.flush()  # what was just answered is found
        return list(await self._run(self._search, filters))

    def _search(self, f: dict[str, Any]) -> list[Delivery]:
        assert self._db is not None
        where, args = ["1"], []
        for column in ("connector_id", "outcome", "reason"):
            if f.get(column):
                where.append(f"{column} = ?")
                args.append(f[column])
        with self._lock:
            for key, op in (("since", ">="), ("until", "<"), ("before", "<")):
                if f.get(key) is not None:  # before: paging, older than the last row seen
                    where.append(f"rowid {op} ?")
                    args.append(self._first("deliveries", float(f[key])))
        # text in the body (the type is in the body too: a first cut), read from segments
        texts = [str(f[k]).encode() for k in ("q", "type") if f.get(k)]
        if f.get("request_ids"):
            ids = list(f["request_ids"])[:1000]
            where.append(f"request_id IN ({','.join('?' * len(ids))})")
            args.extend(ids)
        limit = min(int(f.get("limit") or PAGE), 1000 if f.get("request_ids") else PAGE)
        found: list[Delivery] = []
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM deliveries WHERE {' AND '.join(where)}"  # noqa: S608
                " ORDER BY rowid DESC", args)
            for scanned, r in enumerate(rows):
                body = self._body(r[9], r[10], r[11])
                if all(t in body for t in texts):
                    found.append(Delivery(r[0], r[1], r[2], r[3], r[4], orjson.loads(r[5]),
                                          r[6], r[7], orjson.loads(r[8]), body, bool(r[12])))
                if len(found) >= limit or scanned >= SCAN:
                    break
        return found

    async def path_of(self, event_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Where each event went: its topic, partition and offset once published."""
        await self.flush()
        return dict(await self._run(self._path_of, event_ids))

    def _path_of(self, event_ids: list[str]) -> dict[str, dict[str, Any]]:
        assert self._db is not None
        ids = event_ids[:1000]
        with self._lock:
            rows = self._db.execute(  # the last publication of each (a replay's)
                f"SELECT event_id, topic, partition, \"offset\", at FROM published"  # noqa: S608
                f" WHERE event_id IN ({','.join('?' * len(ids))}) ORDER BY rowid",
                ids).fetchall()
        return {r[0]: {"topic": r[1], "partition": r[2], "offset": r[3], "at": r[4]}
                for r in rows}

    async def stats(self, since: float) -> dict[str, dict[str, Any]]:
        """Per connector since ``since``: requests by outcome, and the last failure (its
        outcome, reason, time and request id): the dashboard's rates and last error."""
        await self.flush()
        return dict(await self._run(self._stats, since))

    def _stats(self, since: float) -> dict[str, dict[str, Any]]:
        assert self._db is not None
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            first = self._first("deliveries", since)
            counts = self._db.execute(
                "SELECT connector_id, outcome, count(*) FROM deliveries WHERE rowid >= ?"
                " GROUP BY connector_id, outcome", (first,)).fetchall()
            # SQLite: with max(), the bare columns come from the row holding the maximum
            failures = self._db.execute(
                "SELECT connector_id, outcome, reason, max(rowid), at, request_id"
                " FROM deliveries WHERE rowid >= ? AND outcome IN"
                " ('rejected', 'failed', 'dead_lettered') GROUP BY connector_id",
                (first,)).fetchall()
        for cid, outcome, n in counts:
            out.setdefault(cid or "", {"outcomes": {}, "last_error": None})[
                "outcomes"][outcome] = n
        for cid, outcome, reason, _, at, request_id in failures:
            out[cid or ""]["last_error"] = {"outcome": outcome, "reason": reason, "at": at,
                                            "request_id": request_id}
        return out
