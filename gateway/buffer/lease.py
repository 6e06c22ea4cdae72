"""The relay lease: only one process relays at a time.

The holder renews it every second (``acquire`` again); a holder that died loses it once
``ttl`` has passed, and another process takes it over.
"""

from __future__ import annotations

import time

from gateway.buffer.db import Database


class Lease:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def acquire(self, owner: str, ttl: float) -> bool:
        """Take or renew the lease for ``ttl`` seconds; False while another owner holds it.
        (A dead holder's lease expires after ``ttl``.)"""
        def take() -> bool:
            now = time.time()
            cur = self._db.conn.execute(
                "UPDATE lease SET owner = ?, expires = ? WHERE id = 1 AND"
                " (owner = ? OR owner IS NULL OR expires < ?)", (owner, now + ttl, owner, now))
            return cur.rowcount == 1
        return await self._db.run(take)

    async def release(self, owner: str) -> None:
        """Give the lease up, if ``owner`` holds it: another process may take it at once."""
        def release() -> None:
            self._db.conn.execute("UPDATE lease SET owner = NULL, expires = 0 WHERE owner = ?",
                                  (owner,))
        await self._db.run(release)
