"""The database thread: one SQLite connection, used by one dedicated thread, for everything.

Functions run on it in turn (``Database.run``); between them it drains the queue of
submissions (``Database.pending``) in batches of up to ``MAX_BATCH``, each batch handed
to ``Database.commit`` (the outbox's group commit, ``gateway.buffer.outbox``). The next
batch starts as soon as the last is done, with whatever queued up meanwhile. The
connection runs with ``synchronous=FULL``: a commit returns once it is fsynced.
``transaction`` is the one way to write more than one statement atomically.

Several processes write the file (every worker's group commits, the relay's deletes).
SQLite alone would make a writer that finds the file locked sleep and retry (1, 2, 5,
10 ms ...), which with two workers doubled the tail latency and cost CPU in retries. So
writers queue on ``WriterLock`` first (``flock`` on ``<file>.lock``): the kernel hands it
to the next one the moment it is released, and a process that dies releases it with its
file descriptors. ``Database.run`` calls and the outbox's group commits hold it;
``Database.read`` calls (WAL readers block nobody) do not. SQLite's own checkpoint would
run inside the committing statement, so under the lock, making every other writer wait
for it; the thread checkpoints instead (``PASSIVE``) after every ``CHECKPOINT_EVERY``
writes, once the lock is released, as SQLite does after its write lock.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any, TypeVar

from gateway.errors import Unavailable

T = TypeVar("T")

MAX_BATCH = 2000
CHECKPOINT_EVERY = 8  # writes (a group commit: some hundred pages; SQLite's default: 1000)

_Call = tuple[Callable[..., Any], tuple[object, ...], "asyncio.Future[Any]", bool]
_STOP: Any = object()  # queued by close(): the database thread exits


@contextmanager
def transaction(conn: sqlite3.Connection, *, durable: bool = True) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any error. ``durable=False``
    skips the fsync at commit, for writes whose loss in a power cut costs nothing (a
    delete redone, a status rewritten a second later)."""
    if not durable:
        conn.execute("PRAGMA synchronous=NORMAL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        if not durable:
            conn.execute("PRAGMA synchronous=FULL")


def settle(future: asyncio.Future[Any], result: object, error: BaseException | None
           ) -> None:
    """Hand ``result`` (or ``error``) to whoever awaits ``future``, if anyone still does."""
    if future.done():  # the awaiting request went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class WriterLock:
    """Exclusive among this file's writers, in every process (``flock``: released when
    its holder dies). Not reentrant; one per ``Database``, used by its thread alone."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")
        self._fd: int | None = None

    def open(self) -> None:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)


def _no_commit(batch: list[Any]) -> None:
    raise RuntimeError("no group commit is attached to the database")


class Database:
    """The connection and its thread. Work reaches it two ways: ``run`` (a function,
    awaited) and ``pending`` + ``notify`` (submissions, committed by ``commit``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loop: asyncio.AbstractEventLoop | None = None
        # Submissions for the next group commit, and what commits a batch of them (on
        # this thread; it hands the outcomes back itself, with ``post``).
        self.pending: deque[Any] = deque()
        self.commit: Callable[[list[Any]], None] = _no_commit
        self._calls: deque[_Call] = deque()
        self._work = threading.Event()  # set when the thread has something to do
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self.writer = WriterLock(path)
        self._writes = 0  # since the last checkpoint

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection (on the database thread only, while open)."""
        assert self._conn is not None
        return self._conn

    async def open(self, prepare: Callable[[sqlite3.Connection], None]) -> None:
        """Start the thread and open the file; ``prepare`` (the schema) runs on the new
        connection before anything else does."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.writer.open()
        self.loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._serve, name="buffer-db", daemon=True)
        self._thread.start()
        await self.run(self._connect, prepare)

    def _connect(self, prepare: Callable[[sqlite3.Connection], None]) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=30.0)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # ours: outside the writer lock
        prepare(conn)
        self._conn = conn

    async def close(self) -> None:
        """Commit what is pending, close the connection, end the thread."""
        thread = self._thread
        if thread is None:
            return
        self._calls.append(_STOP)
        self._work.set()
        await asyncio.to_thread(thread.join)
        self._thread = None

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on the database thread, holding the writer lock."""
        return await self._call(fn, args, True)

    async def read(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on the database thread: it only reads (WAL readers need no lock)."""
        return await self._call(fn, args, False)

    async def _call(self, fn: Callable[..., T], args: tuple[object, ...], writes: bool) -> T:
        if self._thread is None or self.loop is None:
            raise Unavailable("the buffer is not open")
        future: asyncio.Future[T] = self.loop.create_future()
        self._calls.append((fn, args, future, writes))
        self.notify()
        return await future

    def notify(self) -> None:
        """Tell the thread there is work (a call or a submission)."""
        if not self._work.is_set():
            self._work.set()

    def post(self, fn: Callable[..., None], *args: object) -> None:
        """Run ``fn(*args)`` on the event loop, from the database thread."""
        assert self.loop is not None
        with suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self.loop.call_soon_threadsafe(fn, *args)

    def _serve(self) -> None:
        """The database thread. After each group commit it takes what queued up meanwhile
        straight away; ``commit`` hands the outcomes back with one loop callback."""
        while True:
            self._work.wait()
            self._work.clear()  # anything queued from here on sets it again
            while self._calls or self.pending:
                if self._calls:
                    call = self._calls.popleft()
                    if call is not _STOP:
                        fn, args, future, writes = call
                        locked: AbstractContextManager[None] = (
                            self.writer if writes else nullcontext())
                        try:
                            with locked:
                                result, error = fn(*args), None
                        except Exception as exc:
                            result, error = None, exc
                        self.post(settle, future, result, error)
                        if writes:
                            self._wrote()
                    elif self.pending:  # what was queued before close() is committed first
                        self._calls.append(_STOP)
                    else:
                        if self._conn is not None:
                            self._conn.close()
                            self._conn = None
                        self.writer.close()
                        return
                if self.pending:
                    pending = self.pending
                    self.commit([pending.popleft() for _ in range(min(len(pending), MAX_BATCH))])
                    self._wrote()

    def _wrote(self) -> None:
        """Count a write; every ``CHECKPOINT_EVERY``, copy the log into the file (what
        readers still use stays; a failure is retried with the next)."""
        self._writes += 1
        if self._writes >= CHECKPOINT_EVERY and self._conn is not None:
            self._writes = 0
            with suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
