"""Shared status, written by one process and read by all: the relay's status (for
``/readyz`` in workers that do not relay), the pollers' health, and each worker's metrics
snapshot (so that ``/metrics`` totals are the same whichever worker answers).

The relay status and the metrics are rewritten every second or so: losing a write in a
power cut costs nothing, so those skip the fsync.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.buffer.db import Database, transaction


@dataclass(frozen=True, slots=True)
class RelayStatus:
    """What the relay (possibly another process) last said about Kafka."""

    kafka_ok: bool
    error: str | None
    published: int
    updated: float
    leader: bool = False  # a relay holds the lease now (read from the lease, not written)
    # Kafka answers but refuses the gateway (credentials, certificates): it will not heal
    # by itself. Stored as kafka_ok = -1 (1: ok, 0: unreachable).
    refused: bool = False


class Status:
    def __init__(self, db: Database, refresh: Callable[[], None]) -> None:
        """``refresh`` (on the database thread) rereads the outbox's counts, which other
        processes move too: ``read_relay`` does it on the way."""
        self._db = db
        self._refresh = refresh

    async def write_relay(self, status: RelayStatus) -> None:
        def write() -> None:
            conn = self._db.conn
            with transaction(conn, durable=False):
                conn.execute(
                    "UPDATE relay_status SET kafka_ok = ?, error = ?, published = ?,"
                    " updated = ? WHERE id = 1",
                    (-1 if status.refused else int(status.kafka_ok), status.error,
                     status.published, status.updated))
        await self._db.run(write)

    async def read_relay(self) -> RelayStatus:
        """The relay's status, and (as a side effect) fresh outbox counts."""
        def read() -> RelayStatus:
            self._refresh()
            row = self._db.conn.execute(
                "SELECT kafka_ok, error, published, updated, (SELECT owner IS NOT NULL AND"
                " expires > ? FROM lease) FROM relay_status", (time.time(),)).fetchone()
            return RelayStatus(row[0] == 1, row[1], row[2], row[3], bool(row[4]),
                               refused=row[0] == -1)
        return await self._db.read(read)

    async def write_pollers(self, view: dict[str, Any]) -> None:
        def write() -> None:
            self._db.conn.execute("INSERT OR REPLACE INTO poller_status VALUES (1, ?, ?)",
                                  (orjson.dumps(view), time.time()))
        await self._db.run(write)

    async def read_pollers(self) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            row = self._db.conn.execute("SELECT state, updated FROM poller_status").fetchone()
            if row is None:
                return {}
            view: dict[str, Any] = orjson.loads(row[0])
            for health in view.values():
                health["reported_seconds_ago"] = round(time.time() - row[1], 1)
            return view
        return await self._db.read(read)

    async def read_metrics(self, oldest: float) -> list[tuple[str, bytes]]:
        """Every process's latest metrics snapshot updated since ``oldest``, by worker."""
        def read() -> list[tuple[str, bytes]]:
            rows = self._db.conn.execute(
                "SELECT worker, snapshot FROM worker_metrics WHERE updated >= ?",
                (oldest,)).fetchall()
            return [(str(row[0]), bytes(row[1])) for row in rows]
        return await self._db.read(read)

    async def share_metrics(self, worker: str, snapshot: bytes, oldest: float) -> list[bytes]:
        """Store ``worker``'s metrics snapshot; forget those not updated since ``oldest``;
        return the other workers' snapshots."""
        def share() -> list[bytes]:
            conn = self._db.conn
            with transaction(conn, durable=False):  # counters: no fsync needed
                conn.execute("INSERT OR REPLACE INTO worker_metrics VALUES (?, ?, ?)",
                             (worker, snapshot, time.time()))
                conn.execute("DELETE FROM worker_metrics WHERE updated < ?", (oldest,))
                rows = conn.execute("SELECT snapshot FROM worker_metrics WHERE worker != ?",
                                    (worker,)).fetchall()
            return [bytes(row[0]) for row in rows]
        return await self._db.run(share)
