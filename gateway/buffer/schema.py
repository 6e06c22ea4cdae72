"""What the buffer file holds: its tables, the triggers that keep the stats and the
deduplication rows, and the migrations of files written by earlier versions.

``segments`` is the outbox (one row per group commit, ``gateway.buffer.outbox``), with
``dedup``, ``stats`` and ``quarantine``; ``lease`` is the relay lease
(``gateway.buffer.lease``); ``cursors`` the pollers' positions
(``gateway.buffer.cursors``); ``relay_status``, ``poller_status`` and ``worker_metrics``
the shared status (``gateway.buffer.status``).
"""

from __future__ import annotations

import sqlite3

from gateway.buffer.db import transaction

SCHEMA = """
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
TRIGGERS = [
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
# Each deduplication row's bytes beyond its key (the triggers above spell it out too).
DEDUP_ROW_BYTES = 48


def create(conn: sqlite3.Connection) -> None:
    """Create what is missing, migrate what is old, (re)create the triggers."""
    conn.executescript(SCHEMA)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(segments)")}
    if "dedup_keys" not in columns:  # a buffer written before the triggers
        conn.executescript("ALTER TABLE segments ADD COLUMN dedup_keys TEXT;"
                           " ALTER TABLE segments ADD COLUMN dedup_expires REAL;")
    if "dedup_bytes" not in {row[1] for row in conn.execute("PRAGMA table_info(stats)")}:
        with transaction(conn):  # a buffer written before dedup rows were counted
            conn.execute("ALTER TABLE stats ADD COLUMN dedup_bytes INTEGER NOT NULL"
                         " DEFAULT 0")
            conn.execute("UPDATE stats SET dedup_bytes = (SELECT coalesce(sum("
                         "length(key) + ?), 0) FROM dedup)", (DEDUP_ROW_BYTES,))
    with transaction(conn):  # atomic: other processes may be committing meanwhile
        for statement in TRIGGERS:
            conn.execute(statement)
