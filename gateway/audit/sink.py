"""The file side of the audit trail, used only on the audit-io thread: whole lines
appended under a lock, rotated by size, torn tails healed, failed chunks rolled back."""


from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import structlog

if TYPE_CHECKING:
    pass

log = structlog.get_logger(__name__)

CHUNK_BYTES = 1 << 20  # the most written (and rolled back) at once

Line = tuple[float, str | None, str, str | None, Iterable[str], str | None, str | None,
              str | None, int | None, str | None, str | None]


class Sink:
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

    def flush(self, lines: list[Line], write: bool) -> tuple[int, OSError | None] | None:
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

    def _add(self, lines: list[Line]) -> None:
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

    def _format(self, line: Line) -> bytes:
        t, cid, outcome, reason, ids, rid, remote, sha, size, client_rid, trace = line
        sec = int(t)
        if sec != self._second:
            self._second = sec
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return orjson.dumps({
            "ts": f"{self._second_text}.{int((t - sec) * 1000):03d}Z", "connector_id": cid,
            "outcome": outcome, "reason": reason, "event_ids": list(ids), "request_id": rid,
            "remote_addr": remote, "body_sha256": sha, "bytes": size,
            **({"client_request_id": client_rid} if client_rid is not None else {}),
            **({"traceparent": trace} if trace is not None else {})},
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


def errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)
