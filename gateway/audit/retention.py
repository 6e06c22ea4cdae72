"""Per-connector retention of the audit trail (``governance.retention_days``).

``expire`` rewrites the trail's files (``PATH`` and its rotated ``PATH.N``) without the
lines of connectors whose retention has passed; other lines are kept byte for byte, in
their order. It runs on the audit-io thread at most once per ``interval`` across every
process sharing the trail (the mtime of ``PATH.retention`` says when one last did), under
the same ``flock`` the writers take, so no line is written meanwhile: a file is replaced
by a complete copy (written, fsynced, renamed over it), and writers holding the old
``PATH`` reopen it as they do after a rotation.

Lines are matched by their prefix (``{"ts":"...","connector_id":"..."``, the order the
writer uses) without parsing the rest: the timestamps compare as text.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path

import orjson

_PREFIX = re.compile(rb'\{"ts":"([0-9T:.-]+Z)","connector_id":("(?:[^"\\]|\\.)*"|null)')


def _cutoffs(retention: Mapping[str, float], now: float) -> dict[bytes, bytes]:
    """connector id as JSON -> the ``ts`` text before which its lines go."""
    out = {}
    for cid, seconds in retention.items():
        stamp = now - seconds
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp))
        out[orjson.dumps(cid)] = f"{text}.{int((stamp % 1) * 1000):03d}Z".encode()
    return out


def _kept(data: bytes, cutoffs: Mapping[bytes, bytes]) -> tuple[bytes, int]:
    """``data`` without the expired lines, and how many went."""
    out, dropped, start = [], 0, 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        m = _PREFIX.match(data, start)
        if m is not None and (cutoff := cutoffs.get(m.group(2))) is not None \
                and m.group(1) < cutoff:
            dropped += 1
        else:
            out.append(data[start:end])
        start = end
    return b"".join(out), dropped


def _rewrite(path: Path, cutoffs: Mapping[bytes, bytes]) -> int:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    kept, dropped = _kept(data, cutoffs)
    if dropped:
        tmp = path.with_name(path.name + ".expiring")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        try:
            view = memoryview(kept)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    return dropped


def expire(path: Path, retention: Mapping[str, float], *, interval: float,
           now: float | None = None) -> int | None:
    """Removes the expired lines from the trail at ``path``: how many, or None when
    another process (or this one) swept within ``interval`` seconds, or the trail is not
    a regular file."""
    if not retention:
        return None
    now = time.time() if now is None else now
    marker = path.with_name(path.name + ".retention")
    try:
        if now - marker.stat().st_mtime < interval:
            return None
    except FileNotFoundError:
        pass
    if path.exists() and not path.is_file():
        return None  # a pipe or a device: nothing to rewrite
    lock_fd = os.open(path.with_name(path.name + ".lock"),
                      os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        marker.touch()
        os.utime(marker, (now, now))
        cutoffs = _cutoffs(retention, now)
        rotated = sorted((p for p in path.parent.glob(path.name + ".*")
                          if p.name[len(path.name) + 1:].isdigit()),
                         key=lambda p: int(p.name[len(path.name) + 1:]))
        return sum(_rewrite(p, cutoffs) for p in [path, *rotated])
    finally:
        os.close(lock_fd)  # releases the lock
