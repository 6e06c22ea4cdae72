"""The audit trail: one JSON line per request outcome, append-only, rotated by size.

``record`` is the request path: it costs a tuple append, no I/O, no lock, no formatting.
A background task (``gateway.tasks.supervised``: it never dies) hands what accumulated to
the single audit-io thread at most every ``FLUSH_INTERVAL``; everything below happens on
that thread (``_Sink``). Lines never hold a secret, a signature, or the payload itself:
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
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import glob
import os
import re
import stat
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import NoneType
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from gateway.tasks import cancel, supervised

if TYPE_CHECKING:
    from gateway.config import AuditConfig

log = structlog.get_logger(__name__)

OUTCOMES = frozenset({"accepted", "duplicate", "rejected", "handshake", "filtered",
                      "published", "dead_lettered", "failed", "replayed"})

# Lines are written at most this often: each write wakes the I/O thread, which then has
# to win the GIL from the event loop; at 10 ms that cost the request path about 2%.
FLUSH_INTERVAL = 0.05
FIRST_RETRY = 0.1  # after a failed write; doubles up to MAX_RETRY
MAX_RETRY = 5.0
CHUNK_BYTES = 1 << 20  # the most written (and rolled back) at once

# The defaults of gateway.config.AuditConfig
MAX_BYTES = 100 * 1024 * 1024
KEEP = 5
MAX_BACKLOG = 100_000


@dataclass
class _Episode:
    """A run of failed writes, from the first failure to the next successful flush."""

    since: float
    dropped_before: int
    written: int = 0  # lines that made it to the file during the episode


class AuditLog:
    """The trail of one process: ``record`` on the event loop, the writing on its
    audit-io thread. ``open`` and ``close`` belong to the lifespan."""

    def __init__(self, path: Path, *, max_bytes: int = MAX_BYTES, keep: int = KEEP,
                 max_backlog: int = MAX_BACKLOG) -> None:
        self.path = path
        self._lines: list[_Line] = []
        self._ready = asyncio.Event()
        self._sink = _Sink(path, max_bytes=max_bytes, keep=keep, max_backlog=max_backlog)
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-io")
        self._task: asyncio.Task[None] | None = None
        self._failing: _Episode | None = None
        self._retry = FIRST_RETRY

    @classmethod
    def from_config(cls, path: Path, config: AuditConfig) -> AuditLog:
        return cls(path, max_bytes=config.max_bytes, keep=config.keep,
                   max_backlog=config.max_backlog_lines)

    @property
    def errors(self) -> int:
        """Failed write attempts (gateway_audit_errors_total)."""
        return self._sink.errors

    @property
    def dropped(self) -> int:
        """Lines dropped, oldest first, past the backlog bound or unwritten at close."""
        return self._sink.dropped

    @property
    def backlog(self) -> int:
        """Lines recorded and not yet written."""
        return len(self._lines) + len(self._sink.backlog)

    async def open(self) -> None:
        """Opens the file and starts the writer. A file that cannot be opened (yet) is not
        fatal: it is logged and retried like any failed write."""
        await self._flush(write=True)
        self._task = supervised("audit-writer", self._run)

    async def close(self) -> None:
        await cancel(self._task)
        self._task = None
        await self._flush(write=True)
        lost = await asyncio.get_running_loop().run_in_executor(self._io, self._sink.close)
        if lost:
            log.warning("audit_lines_lost", path=str(self.path), lines=lost)
        self._io.shutdown(wait=True)

    def record(self, outcome: str, *, connector_id: str | None, reason: str | None = None,
               event_ids: Iterable[str] = (), request_id: str | None = None,
               remote_addr: str | None = None, body_sha256: str | None = None,
               size: int | None = None, client_request_id: str | None = None) -> None:
        """One outcome. ``client_request_id``: the X-Request-Id the client sent, kept
        beside the gateway's own ``request_id`` (the line has it only when given)."""
        assert outcome in OUTCOMES, outcome
        self._lines.append((time.time(), connector_id, outcome, reason, event_ids, request_id,
                            remote_addr, body_sha256, size, client_request_id))
        if not self._ready.is_set():
            self._ready.set()

    async def _run(self) -> None:
        while True:
            if self._failing is None:
                await self._ready.wait()
                self._ready.clear()
                await self._flush(write=True)
                await asyncio.sleep(FLUSH_INTERVAL)  # let a burst gather into one write
                continue
            retry_at = time.monotonic() + self._retry
            while (left := retry_at - time.monotonic()) > 0:
                await asyncio.sleep(min(left, FLUSH_INTERVAL))
                if self._lines:  # into the backlog, which is bounded
                    await self._flush(write=False)
            self._ready.clear()
            await self._flush(write=True)

    async def _flush(self, *, write: bool) -> None:
        lines, self._lines = self._lines, []
        dropped_before = self.dropped
        job = asyncio.get_running_loop().run_in_executor(self._io, self._sink.flush, lines,
                                                         write)
        # Cancelling the writer (close) must neither cancel a job still queued for the I/O
        # thread (its lines would vanish) nor skip its outcome: hence shield and callback.
        job.add_done_callback(lambda done: self._settle(done, dropped_before))
        await asyncio.shield(job)

    def _settle(self, job: asyncio.Future[tuple[int, OSError | None] | None],
                dropped_before: int) -> None:
        """Counts a flush's outcome: logs the start and the end of a failure episode."""
        if job.cancelled() or job.exception() is not None or (result := job.result()) is None:
            return  # an unexpected exception reaches the writer task, which logs it
        written, error = result
        episode = self._failing
        if error is None:
            if episode is not None:
                log.info("audit_write_recovered", path=str(self.path),
                         waited=episode.written + written,
                         dropped=self.dropped - episode.dropped_before,
                         seconds=round(time.monotonic() - episode.since, 3))
                self._failing = None
            self._retry = FIRST_RETRY
        elif episode is None:
            self._failing = _Episode(time.monotonic(), dropped_before)
            log.warning("audit_write_failed", path=str(self.path), error=_errno_name(error),
                        detail=error.strerror, backlog=self.backlog, retry_in=self._retry)
        else:
            episode.written += written
            self._retry = min(self._retry * 2, MAX_RETRY)


_Line = tuple[float, str | None, str, str | None, Iterable[str], str | None, str | None,
              str | None, int | None, str | None]


class _Sink:
    """The file side of the trail; used only on the audit-io thread."""

    def __init__(self, path: Path, *, max_bytes: int, keep: int, max_backlog: int) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self.max_bytes, self.keep, self.max_backlog = max_bytes, keep, max_backlog
        self.backlog: deque[bytes] = deque()
        self.errors = 0
        self.dropped = 0
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._regular = True
        self._second, self._second_text = -1, ""  # the last whole second formatted

    def flush(self, lines: list[_Line], write: bool) -> tuple[int, OSError | None] | None:
        """Adds ``lines`` to the backlog and, if ``write``, writes all of it: returns how
        many lines were written and the error that stopped it, if one did."""
        self._add(lines)
        if not write:
            return None
        written = 0
        try:
            self._open()
            while self.backlog:
                chunk, count = self._next_chunk()
                self._write(chunk)
                if count == len(self.backlog):
                    self.backlog.clear()
                else:
                    for _ in range(count):
                        self.backlog.popleft()
                written += count
        except OSError as exc:
            self.errors += 1
            return written, exc
        return written, None

    def close(self) -> int:
        """Closes the file; returns how many lines could not be written (and drops them)."""
        lost = len(self.backlog)
        self.dropped += lost
        self.backlog.clear()
        fd, lock_fd, self._fd, self._lock_fd = self._fd, self._lock_fd, None, None
        if fd is not None:
            try:
                os.fsync(fd)
            except OSError:
                pass  # a device, or a disk still failing: nothing more to do
            finally:
                os.close(fd)
        if lock_fd is not None:
            os.close(lock_fd)
        return lost

    def _add(self, lines: list[_Line]) -> None:
        excess = len(self.backlog) + len(lines) - self.max_backlog
        if excess > 0:  # drop the oldest
            if excess >= len(self.backlog):
                lines = lines[excess - len(self.backlog):]
                self.backlog.clear()
            else:
                for _ in range(excess):
                    self.backlog.popleft()
        self.backlog.extend(map(self._format, lines))
        if excess > 0:  # counted last: a reader never sees it ahead of the backlog
            self.dropped += excess

    def _format(self, line: _Line) -> bytes:
        t, cid, outcome, reason, ids, rid, remote, sha, size, client_rid = line
        sec = int(t)
        if sec != self._second:
            self._second = sec
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return orjson.dumps({
            "ts": f"{self._second_text}.{int((t - sec) * 1000):03d}Z", "connector_id": cid,
            "outcome": outcome, "reason": reason, "event_ids": list(ids), "request_id": rid,
            "remote_addr": remote, "body_sha256": sha, "bytes": size,
            **({"client_request_id": client_rid} if client_rid is not None else {})},
            default=str, option=orjson.OPT_APPEND_NEWLINE)

    def _next_chunk(self) -> tuple[bytes, int]:
        """The oldest lines, up to CHUNK_BYTES (and max_bytes: a chunk fits one file)."""
        limit, size, parts = min(CHUNK_BYTES, self.max_bytes), 0, list[bytes]()
        for line in self.backlog:
            if parts and size + len(line) > limit:
                break
            parts.append(line)
            size += len(line)
        return b"".join(parts), len(parts)

    def _open(self) -> None:
        if self._lock_fd is not None and not _same_file(self.lock_path, self._lock_fd):
            os.close(self._lock_fd)  # its directory was removed and made again
            self._lock_fd = None
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = _open_append(self.path)
            self._regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
        if self._regular and self._lock_fd is None:
            self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                                    0o640)

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        if not self._regular:
            _write_all(self._fd, data)
            return
        assert self._lock_fd is not None
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            fd = self._follow()
            end = self._heal(fd)
            if end and end + len(data) > self.max_bytes:
                fd, end = self._rotate(), 0
            try:
                _write_all(fd, data)
            except OSError:
                self._truncate(fd, end)
                raise
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _follow(self) -> int:
        """Our descriptor for PATH, reopened if PATH is another file now (rotated)."""
        assert self._fd is not None
        if not _same_file(self.path, self._fd):
            fd, self._fd = self._fd, None
            os.close(fd)
            self._fd = _open_append(self.path)
        return self._fd

    def _heal(self, fd: int) -> int:
        """The file's size, once a tail without its newline is cut off."""
        size = os.fstat(fd).st_size
        try:
            if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
                return size
        except OSError:
            return size  # not readable (opened write-only): cannot check
        end = pos = size
        while pos > 0:
            start = max(0, pos - 65536)
            i = os.pread(fd, pos - start, start).rfind(b"\n")
            if i >= 0:
                end = start + i + 1
                break
            pos = start
        else:
            end = 0
        os.ftruncate(fd, end)
        log.warning("audit_torn_tail_removed", path=str(self.path), bytes=size - end)
        return end

    def _rotate(self) -> int:
        """PATH.{keep-1} -> PATH.{keep} ... PATH -> PATH.1; returns the new PATH's fd."""
        assert self._fd is not None
        base = str(self.path)
        last = 0
        while os.path.exists(f"{base}.{last + 1}"):
            last += 1
        for i in range(last, self.keep - 1, -1):  # past keep once shifted (keep lowered)
            os.unlink(f"{base}.{i}")
        for i in range(min(last, self.keep - 1), 0, -1):
            os.rename(f"{base}.{i}", f"{base}.{i + 1}")
        os.rename(base, f"{base}.1")
        fd, self._fd = self._fd, None
        os.close(fd)
        self._fd = _open_append(self.path)
        return self._fd

    def _truncate(self, fd: int, end: int) -> None:
        """Rolls a failed write back to ``end``; if even that fails, ``_heal`` will."""
        try:
            if os.fstat(fd).st_size > end:
                os.ftruncate(fd, end)
        except OSError:
            pass


def _open_append(path: Path) -> int:
    flags = os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    try:
        return os.open(path, os.O_RDWR | flags, 0o640)  # readable, to check its tail
    except PermissionError:
        return os.open(path, os.O_WRONLY | flags, 0o640)


def _same_file(path: Path, fd: int) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written == 0:
            raise OSError(errno.EIO, "write wrote nothing")
        view = view[written:]


def _errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


# verify

FIELDS: dict[str, tuple[type, ...]] = {
    "ts": (str,), "connector_id": (str, NoneType), "outcome": (str,),
    "reason": (str, NoneType), "event_ids": (list,), "request_id": (str, NoneType),
    "remote_addr": (str, NoneType), "body_sha256": (str, NoneType), "bytes": (int, NoneType)}
_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@dataclass(frozen=True)
class FileCount:
    path: Path
    lines: int
    bad: int


@dataclass(frozen=True)
class BadLine:
    path: Path
    line: int  # from 1
    problem: str


@dataclass(frozen=True)
class VerifyReport:
    path: Path
    files: list[FileCount]  # oldest first: PATH.{n} ... PATH.1, PATH
    bad_lines: list[BadLine]  # the first ones

    @property
    def ok(self) -> bool:
        return bool(self.files) and not any(f.bad for f in self.files)

    def summary(self) -> str:
        if not self.files:
            return f"no audit file at {self.path}"
        out = [f"{f.path}: {f.lines} lines" + (f", {f.bad} bad" if f.bad else "")
               for f in self.files]
        bad = sum(f.bad for f in self.files)
        total = sum(f.lines for f in self.files)
        if not bad:
            out.append(f"ok: {total} lines in {len(self.files)} files")
            return "\n".join(out)
        out.append(f"{bad} bad of {total} lines in {len(self.files)} files"
                   + (f"; the first {len(self.bad_lines)}:" if len(self.bad_lines) < bad
                      else ":"))
        out += [f"  {b.path}:{b.line}: {b.problem}" for b in self.bad_lines]
        return "\n".join(out)


def verify_files(path: Path, *, max_bad: int = 20) -> VerifyReport:
    """Checks that every line of ``path`` and its rotated files is a whole audit line."""
    rotated = sorted((int(p.name.rpartition(".")[2]), p) for p in path.parent.glob(
        glob.escape(path.name) + ".*") if p.name.rpartition(".")[2].isdigit())
    candidates = [p for _, p in reversed(rotated)] + [path]
    files: list[FileCount] = []
    bad_lines: list[BadLine] = []
    for p in candidates:
        try:
            f = p.open("rb")
        except FileNotFoundError:
            continue  # rotated away while we looked
        lines = bad = 0
        with f:
            for lines, raw in enumerate(f, 1):
                problem = _check_line(raw)
                if problem is not None:
                    bad += 1
                    if len(bad_lines) < max_bad:
                        bad_lines.append(BadLine(p, lines, problem))
        files.append(FileCount(p, lines, bad))
    return VerifyReport(path, files, bad_lines)


def _check_line(raw: bytes) -> str | None:
    if not raw.endswith(b"\n"):
        return "incomplete last line (no newline)"
    try:
        obj: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "not JSON (a torn or interleaved line?)"
    if not isinstance(obj, dict):
        return "not a JSON object"
    missing = [k for k in FIELDS if k not in obj]
    if missing:
        return "missing " + ", ".join(missing)
    for key, types in FIELDS.items():
        if not isinstance(obj[key], types) or isinstance(obj[key], bool):
            return f"{key} is a {type(obj[key]).__name__}"
    if obj["outcome"] not in OUTCOMES:
        return f"unknown outcome {obj['outcome'][:40]!r}"
    if not all(isinstance(i, str) for i in obj["event_ids"]):
        return "event_ids holds a non-string"
    if not _TS.fullmatch(obj["ts"]):
        return "ts is not YYYY-MM-DDTHH:MM:SS.mmmZ"
    return None
