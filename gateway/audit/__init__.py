"""The audit trail: one JSON line per request outcome, append-only, rotated by size.

``record`` is the request path: it costs a tuple append, no I/O, no lock, no formatting.
A background task (``gateway.tasks.supervised``: it never dies) hands what accumulated to
the single audit-io thread at most every ``FLUSH_INTERVAL``; everything below happens on
that thread (``sink.Sink``). Lines never hold a secret, a signature, or the payload itself:
only its hash and size.

Writing. Lines are formatted into a backlog of at most ``max_backlog`` lines (past it the
oldest are dropped and counted) and written in chunks of whole lines. Several worker
processes append to the same file, so each chunk is written holding an exclusive
``flock`` on ``PATH.lock`` (a lock file beside the audit file, never renamed, so it
guards the name across rotations; one lock per flush, on the I/O thread). Under the lock:

1. if ``PATH`` is no longer the inode we hold (``stat(PATH).st_ino`` against
   ``fstat(fd).st_ino``), another writer rotated it (or it was removed): reopen;
2. the file's size is where our chunk will land, since no one else writes meanwhile; if
   the file does not end with a newline (a writer killed mid-write, a rollback that
   failed), the torn tail is cut back to the last newline first;
3. rotate if the chunk would take the file past ``max_bytes``: ``PATH.{keep-1}`` becomes
   ``PATH.{keep}`` (replacing the oldest) ... ``PATH`` becomes ``PATH.1``, and a new
   ``PATH`` is opened. Writers holding the old inode notice at step 1;
4. write the chunk; when the disk fills part-way (a short write, then ENOSPC / EFBIG /
   EIO), ``ftruncate`` back to the size noted in 2. The O_APPEND offset alone could not be
   rolled back safely: without the lock, another process's line may already follow ours.

So the file only ever holds whole lines. A chunk that failed stays in the backlog and is
retried with backoff (``FIRST_RETRY`` doubling to ``MAX_RETRY``); new lines join the
backlog meanwhile. A failure is logged once per episode (``audit_write_failed``, with the
errno name, never a line's content) and the recovery once (``audit_write_recovered``,
with how many lines waited and how many were dropped). ``errors``, ``dropped`` and
``backlog`` are read by /metrics. A path that is not a regular file (``/dev/stdout``, a
pipe, a device) is written as is: no lock, no rotation, no rollback.

``verify_files`` checks a trail and its rotated files line by line (``gateway audit
verify``).

    log.py     AuditLog: record (the request path) and the flushing task
    sink.py    Sink: the file, the lock, rotation, healing and rollback (audit-io thread)
    verify.py  verify_files
"""
from __future__ import annotations

from gateway.audit.log import OUTCOMES, AuditLog
from gateway.audit.verify import FIELDS, VerifyReport, verify_files

__all__ = ["FIELDS", "OUTCOMES", "AuditLog", "VerifyReport", "verify_files"]
