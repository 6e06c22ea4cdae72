"""The audit trail: one JSON line per request outcome, append-only.

``record`` never blocks and costs a tuple append: lines queue in memory and a background
task formats and writes whatever accumulated in one ``write`` on an ``O_APPEND``
descriptor, off the event loop, so
several worker processes can share the file without interleaving lines. Lines never
hold a secret, a signature, or the payload itself: only its hash and size.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from gateway.tasks import cancel

OUTCOMES = frozenset({"accepted", "duplicate", "rejected", "handshake", "filtered",
                      "published", "dead_lettered", "failed"})

# Lines are written at most this often: each write wakes the I/O thread, which then has
# to win the GIL from the event loop; at 10 ms that cost the request path about 2%.
FLUSH_INTERVAL = 0.05


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines: list[_Line] = []
        self._ready = asyncio.Event()
        self._fd: int | None = None
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-io")
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        def do_open() -> int:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._fd = await asyncio.get_running_loop().run_in_executor(self._io, do_open)
        self._task = asyncio.create_task(self._writer(), name="audit-writer")

    async def close(self) -> None:
        await cancel(self._task)
        self._task = None
        await self._flush()
        if self._fd is not None:
            fd, self._fd = self._fd, None
            await asyncio.get_running_loop().run_in_executor(self._io, _fsync_close, fd)
        self._io.shutdown(wait=True)

    def record(self, outcome: str, *, connector_id: str | None, reason: str | None = None,
               event_ids: Iterable[str] = (), request_id: str | None = None,
               remote_addr: str | None = None, body_sha256: str | None = None,
               size: int | None = None) -> None:
        assert outcome in OUTCOMES, outcome
        self._lines.append((time.time(), connector_id, outcome, reason, event_ids, request_id,
                            remote_addr, body_sha256, size))
        if not self._ready.is_set():
            self._ready.set()

    async def _writer(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            await self._flush()
            await asyncio.sleep(FLUSH_INTERVAL)  # let a burst gather into one write

    async def _flush(self) -> None:
        if not self._lines or self._fd is None:
            return
        lines, self._lines = self._lines, []
        await asyncio.get_running_loop().run_in_executor(self._io, _write, self._fd, lines)


_Line = tuple[float, str | None, str, str | None, Iterable[str], str | None, str | None,
              str | None, int | None]
_second: list[object] = [None, ""]  # the last whole second formatted, and its text


def _ts(t: float) -> str:
    sec = int(t)
    if _second[0] != sec:
        _second[0], _second[1] = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{_second[1]}.{int((t - sec) * 1000):03d}Z"


def _write(fd: int, lines: list[_Line]) -> None:
    data = b"".join(orjson.dumps({
        "ts": _ts(t), "connector_id": cid, "outcome": outcome, "reason": reason,
        "event_ids": list(ids), "request_id": rid, "remote_addr": remote,
        "body_sha256": sha, "bytes": size}) + b"\n"
        for t, cid, outcome, reason, ids, rid, remote, sha, size in lines)
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
