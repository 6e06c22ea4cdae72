"""The local durable buffer: an SQLite file in WAL mode between a 2xx and Kafka.

``Buffer`` opens the file and hands out its parts; each module owns one of them:

- ``db``      the database thread: one connection, one thread for all database work,
              the submission queue it drains, ``transaction`` (the one helper for
              multi-statement writes, fsynced unless ``durable=False``).
- ``schema``  the tables, the triggers that keep stats and deduplication rows, and the
              migrations of older files.
- ``codec``   ``Record`` (one Kafka record to be) and the blob a segment stores.
- ``outbox``  ``buffer.outbox``: ``submit``/``submit_each`` on the request path, the
              counts and bounds /readyz reports, ``fetch``/``ack`` for the relay, the purge
              of expired deduplication rows, the quarantine.
- ``commit``  the group commit the outbox runs on the database thread: deduplication,
              the bound check (``fits``), one segment per batch.
- ``lease``   ``buffer.lease``: only one process relays at a time.
- ``cursors`` ``buffer.cursors``: where each poller resumes (saved with its events).
- ``status``  ``buffer.status``: the relay's status, the pollers' health and the workers'
              metrics snapshots, shared between processes.
"""

from __future__ import annotations

from pathlib import Path

from gateway.buffer import schema
from gateway.buffer.codec import Record
from gateway.buffer.cursors import Cursors
from gateway.buffer.db import MAX_BATCH, Database
from gateway.buffer.lease import Lease
from gateway.buffer.outbox import PURGE_CHUNK, Outbox, Quarantined, Segment
from gateway.buffer.schema import DEDUP_ROW_BYTES
from gateway.buffer.status import RelayStatus, Status
from gateway.config import BufferConfig

__all__ = ["DEDUP_ROW_BYTES", "MAX_BATCH", "PURGE_CHUNK", "Buffer", "Cursors", "Lease",
           "Outbox", "Quarantined", "Record", "RelayStatus", "Segment", "Status"]


class Buffer:
    """The buffer file and its parts, which share one database thread (``db``)."""

    def __init__(self, path: Path, settings: BufferConfig) -> None:
        self.path = path
        self.db = Database(path)
        self.outbox = Outbox(self.db, settings)
        self.lease = Lease(self.db)
        self.cursors = Cursors(self.db)
        self.status = Status(self.db, refresh=self.outbox.read_stats)

    async def open(self) -> None:
        await self.db.open(schema.create)
        await self.outbox.open()

    async def close(self) -> None:
        """Refuse new submissions, commit those queued, close the file."""
        self.outbox.close()
        await self.db.close()
