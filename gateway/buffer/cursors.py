"""Poller cursors: where each poller resumes (its own opaque state, as bytes).

A cursor is saved only together with the events it moved past, in the same group
commit (``Outbox.submit_each(..., cursor=...)`` calls ``save``): a poller's position moves
exactly when its events become durable. ``Cursors.load`` reads it back at start.
"""

from __future__ import annotations

import sqlite3

from gateway.buffer.db import Database


def save(conn: sqlite3.Connection, cursor: tuple[str, bytes], now: float) -> None:
    """Store ``cursor`` (poller id, state), inside the caller's transaction."""
    conn.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?, ?)", (*cursor, now))


class Cursors:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def load(self, poller: str) -> bytes | None:
        """``poller``'s saved state, None when it never saved one."""
        def read() -> bytes | None:
            row = self._db.conn.execute("SELECT state FROM cursors WHERE poller = ?",
                                        (poller,)).fetchone()
            return None if row is None else bytes(row[0])
        return await self._db.read(read)
