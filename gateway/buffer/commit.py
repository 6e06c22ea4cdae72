"""The group commit: every submission queued meanwhile, made durable as (at most) one
segment, on the database thread — deduplication and the bounds decided on the way.

When every submission in the batch is new and fits, the whole commit is one ``INSERT``
(``commit_all``): every SQLite call hands the GIL to the event loop and must wait to get
it back, so the fewer calls, the sooner the 2xx. Otherwise one explicit transaction sorts
the batch out submission by submission (``commit_each``). The segment's triggers add the
stats and the deduplication rows (``gateway.buffer.schema``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.buffer.codec import Record, pack
from gateway.buffer.cursors import save as save_cursor
from gateway.buffer.schema import DEDUP_ROW_BYTES
from gateway.config import BufferConfig
from gateway.errors import BufferFull


@dataclass(slots=True)
class Submission:
    dedup_keys: Sequence[str]  # a duplicate when any was seen; all are claimed
    records: Sequence[Record]
    future: asyncio.Future[Any]
    size: int
    record_keys: Sequence[str] | None = None  # one dedup key per record (submit_each)
    cursor: tuple[str, bytes] | None = None  # a poller's state, saved with the records


# Per submission: True (kept), False (a duplicate), per record which were new
# (``record_keys``), or the error to raise (the buffer is full).
Outcome = bool | list[bool] | Exception


def fits(limits: BufferConfig, events: int, nbytes: int) -> bool:
    """Whether a buffer of ``events`` events and ``nbytes`` bytes (deduplication rows
    included) is within the bounds: the one place that decides (``_INSERT_IF_NEW`` says
    the same in SQL)."""
    return events <= limits.max_events and nbytes <= limits.max_bytes


def _full(limits: BufferConfig) -> BufferFull:
    return BufferFull("the local buffer is full", retry_after=limits.retry_after_seconds)


_INSERT_IF_NEW = """
INSERT INTO segments (records, events, bytes, created, dedup_keys, dedup_expires)
SELECT :records, :events, :bytes, :now, :keys, :expires FROM stats
WHERE events + :events <= :max_events
  AND bytes + dedup_bytes + :bytes + :claimed <= :max_bytes
  AND NOT EXISTS (SELECT 1 FROM dedup WHERE expires > :now
                  AND key IN (SELECT value FROM json_each(coalesce(:keys, '[]'))))
"""
_CLAIM = """UPDATE stats SET dedup_bytes = dedup_bytes + coalesce((SELECT sum(length(value) + ?)
    FROM json_each(?) WHERE value NOT IN (SELECT key FROM dedup)), 0) WHERE id = 1"""


def commit_all(conn: sqlite3.Connection, batch: list[Submission], limits: BufferConfig
               ) -> tuple[int, int, int, float] | None:
    """The common case in one statement: every submission new, and room for all.

    One ``INSERT`` in autocommit mode checks the keys and the bounds, inserts the
    segment (its triggers add the stats and the keys) and commits: SQLite runs the
    whole transaction, fsync included, within one release of the GIL, where an
    explicit transaction costs four, each a wait for a busy event loop to hand the GIL
    back. Returns what it added (events, bytes, deduplication bytes, when); None (nothing
    written) when a key was seen, the buffer is too full, or the batch is not plain
    deliveries: ``commit_each`` then sorts it out.
    """
    if any(s.record_keys is not None or s.cursor is not None or not s.records
           for s in batch):
        return None
    window = limits.dedup_window_seconds
    keys = [k for s in batch for k in s.dedup_keys] if window else []
    if len(set(keys)) != len(keys):  # the same delivery twice in one batch
        return None
    records = [r for s in batch for r in s.records]
    size = sum(s.size for s in batch)
    now = time.time()
    keys_json = orjson.dumps(keys)
    claimed = sum(len(k) for k in keys) + DEDUP_ROW_BYTES * len(keys)
    inserted = conn.execute(_INSERT_IF_NEW, {
        "records": pack(records), "events": len(records), "bytes": size, "now": now,
        "keys": keys_json if keys else None, "expires": now + window,
        "max_events": limits.max_events, "max_bytes": limits.max_bytes,
        "claimed": claimed,
    }).rowcount == 1
    return (len(records), size, claimed, now) if inserted else None


def commit_each(conn: sqlite3.Connection, batch: list[Submission], limits: BufferConfig,
                now: float) -> list[Outcome]:
    """Submission by submission, inside the caller's transaction: duplicates answered, a
    full buffer refusing those that do not fit, poller cursors saved."""
    window = limits.dedup_window_seconds
    keys = [k for s in batch for k in s.dedup_keys] if window else []
    if window:
        keys.extend(k for s in batch if s.record_keys for k in s.record_keys)
    events, nbytes, dedup_bytes, seen_keys = conn.execute(
        "SELECT events, bytes, dedup_bytes, (SELECT json_group_array(key) FROM dedup"
        " WHERE expires > ? AND key IN (SELECT value FROM json_each(?))) FROM stats",
        (now, orjson.dumps(keys))).fetchone()
    # The bound counts the deduplication rows this commit adds, as the table will.
    segment = _Segment(limits, events, nbytes + dedup_bytes, set(orjson.loads(seen_keys)))
    results: list[Outcome] = []
    for sub in batch:
        if sub.record_keys is None:
            results.append(segment.add(sub))
            continue
        flags = segment.add_each(sub, sub.record_keys)
        results.append(flags)
        if sub.cursor is not None and not isinstance(flags, Exception):
            save_cursor(conn, sub.cursor, now)
    segment.write(conn, now)
    return results


class _Segment:
    """The segment ``commit_each`` builds: the records it keeps, the keys it claims, and
    the buffer's size as the bound counts it (with them)."""

    def __init__(self, limits: BufferConfig, events: int, nbytes: int, seen: set[str]
                 ) -> None:
        self.limits = limits
        self.window = limits.dedup_window_seconds
        self.events = events
        self.nbytes = nbytes
        self.seen = seen  # keys seen within the window, in the table or in this commit
        self.records: list[Record] = []
        self.fresh: list[str] = []  # the keys this commit claims
        self.size = 0  # the records' bytes

    def add(self, sub: Submission) -> bool | BufferFull:
        """A delivery: False when one of its keys was seen, all its records kept else."""
        claims = sub.dedup_keys if self.window else ()
        if any(k in self.seen for k in claims):
            return False
        claimed = sum(len(k) + DEDUP_ROW_BYTES for k in claims)
        if not fits(self.limits, self.events + len(sub.records),
                    self.nbytes + sub.size + claimed):
            return _full(self.limits)
        self.seen.update(claims)
        self.fresh.extend(claims)
        self.events += len(sub.records)
        self.nbytes += sub.size + claimed
        self.size += sub.size
        self.records.extend(sub.records)
        return True

    def add_each(self, sub: Submission, keys: Sequence[str]) -> list[bool] | BufferFull:
        """Records with one key each: those whose key was not seen are kept."""
        window = self.window
        flags, mine = [], set()
        for k in keys:  # a key twice in one submission counts once
            flags.append(not window or (k not in self.seen and k not in mine))
            mine.add(k)
        kept = [r for r, new in zip(sub.records, flags, strict=True) if new]
        kept_size = sum(len(r.value) for r in kept) + sum(
            len(k) + DEDUP_ROW_BYTES for k, new in zip(keys, flags, strict=True)
            if new and window)
        if kept and not fits(self.limits, self.events + len(kept), self.nbytes + kept_size):
            return _full(self.limits)
        if window:
            for k, new in zip(keys, flags, strict=True):
                if new:
                    self.seen.add(k)
                    self.fresh.append(k)
        self.events += len(kept)
        self.nbytes += kept_size
        self.size += sum(len(r.value) for r in kept)
        self.records.extend(kept)
        return flags

    def write(self, conn: sqlite3.Connection, now: float) -> None:
        """Insert the segment (the triggers add the stats and the deduplication rows), or
        with no records, the keys alone."""
        window = self.window
        if self.records:
            conn.execute("INSERT INTO segments (records, events, bytes, created, dedup_keys,"
                         " dedup_expires) VALUES (?, ?, ?, ?, ?, ?)",
                         (pack(self.records), len(self.records), self.size, now,
                          orjson.dumps(self.fresh) if self.fresh else None, now + window))
        elif self.fresh:  # submissions without records still claim their keys
            fresh_json = orjson.dumps(self.fresh)
            conn.execute(_CLAIM, (DEDUP_ROW_BYTES, fresh_json))
            conn.execute("INSERT OR REPLACE INTO dedup (key, expires)"
                         " SELECT value, ? FROM json_each(?)", (now + window, fresh_json))
