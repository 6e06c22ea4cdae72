"""The buffer's group commit, on a real SQLite file: the one-statement path for batches
of new deliveries, and the submission-by-submission path it falls back to."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from gateway.buffer import Buffer, Record
from gateway.buffer.db import CHECKPOINT_EVERY
from gateway.config import BufferConfig
from gateway.errors import BufferFull


def record(n: int) -> Record:
    return Record("t", b"k", b"v" * 10, f"id-{n}", "c", "e", "s")


async def submit_together(buffer: Buffer, keys: list[str | None]) -> list[object]:
    """Submitted while the database thread is held in a call, so that it commits them as
    one batch (in one loop turn alone, it may wake between two and commit the first)."""
    gate = threading.Event()
    held = asyncio.ensure_future(buffer.db.run(gate.wait))
    await asyncio.sleep(0)  # the call is queued: the thread takes it before any commit
    futures = [buffer.outbox.submit(key, [record(i)]) for i, key in enumerate(keys)]
    gate.set()
    await held
    return list(await asyncio.gather(*futures, return_exceptions=True))


def stored(path: Path) -> tuple[int, int, int]:
    """(segments, events in the stats, dedup keys) as another process would read them."""
    with sqlite3.connect(path) as conn:
        segments = conn.execute("SELECT count(*) FROM segments").fetchone()[0]
        events = conn.execute("SELECT events FROM stats").fetchone()[0]
        keys = conn.execute("SELECT count(*) FROM dedup").fetchone()[0]
    return segments, events, keys


def run(settings: BufferConfig, path: Path,
        scenario: Callable[[Buffer], Awaitable[object]]) -> object:
    async def main() -> object:
        buffer = Buffer(path, settings)
        await buffer.open()
        try:
            return await scenario(buffer)
        finally:
            await buffer.close()
    return asyncio.run(main())


def test_new_deliveries_commit_as_one_segment_with_stats_and_keys(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"

    async def scenario(buffer: Buffer) -> object:
        return await submit_together(buffer, ["a", "b", "c"])

    assert run(BufferConfig(), path, scenario) == [True, True, True]
    assert stored(path) == (1, 3, 3)


def test_a_seen_key_in_a_batch_is_a_duplicate_and_the_rest_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"

    async def scenario(buffer: Buffer) -> object:
        first = await submit_together(buffer, ["a"])
        return first + await submit_together(buffer, ["b", "a", "c"])

    assert run(BufferConfig(), path, scenario) == [True, True, False, True]
    assert stored(path) == (2, 3, 3)


def test_the_same_key_twice_in_one_batch_is_kept_once(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"

    async def scenario(buffer: Buffer) -> object:
        return await submit_together(buffer, ["a", "a", None])

    assert run(BufferConfig(), path, scenario) == [True, False, True]
    assert stored(path) == (1, 2, 1)


def test_a_batch_beyond_the_bound_keeps_what_fits(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"

    async def scenario(buffer: Buffer) -> object:
        return await submit_together(buffer, ["a", "b", "c", "d", "e"])

    outcomes = run(BufferConfig(max_events=3), path, scenario)
    assert isinstance(outcomes, list)
    assert outcomes[:3] == [True, True, True]
    assert all(isinstance(o, BufferFull) for o in outcomes[3:])
    assert stored(path) == (1, 3, 3)  # the refused ones claimed no key


def test_without_a_window_nothing_is_a_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"

    async def scenario(buffer: Buffer) -> object:
        return await submit_together(buffer, ["a"]) + await submit_together(buffer, ["a"])

    assert run(BufferConfig(dedup_window_seconds=0), path, scenario) == [True, True]
    assert stored(path) == (2, 2, 0)


@pytest.mark.parametrize("acked", [1, 2])
def test_acknowledged_segments_leave_the_stats(tmp_path: Path, acked: int) -> None:
    path = tmp_path / "buffer.db"

    async def scenario(buffer: Buffer) -> object:
        await submit_together(buffer, ["a", "b"])
        await submit_together(buffer, ["c"])
        segments = await buffer.outbox.fetch()
        await buffer.outbox.ack(segments[:acked])
        return buffer.outbox.events

    remaining = 1 if acked == 1 else 0
    assert run(BufferConfig(), path, scenario) == remaining
    assert stored(path)[:2] == (2 - acked, remaining)


_HOLD = """
import fcntl, sys
with open(sys.argv[1], "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""


def test_writers_queue_on_the_lock_file_and_readers_do_not(tmp_path: Path) -> None:
    """Another process writing (it holds ``buffer.db.lock``): a group commit waits for it
    instead of sleeping in SQLite's retries, and completes once it is released; reading
    (the relay's fetch) needs no lock."""
    path = tmp_path / "buffer.db"

    async def scenario(buffer: Buffer) -> object:
        await submit_together(buffer, ["a"])
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _HOLD, f"{path}.lock", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        assert holder.stdin is not None
        assert holder.stdout is not None
        try:
            assert await holder.stdout.readline() == b"held\n"
            fetched = await asyncio.wait_for(buffer.outbox.fetch(), 5)
            pending = asyncio.ensure_future(buffer.outbox.submit("b", [record(1)]))
            await asyncio.sleep(0.5)
            waited = not pending.done()
        finally:
            holder.stdin.close()
            await holder.wait()
        return [s.events for s in fetched], waited, await asyncio.wait_for(pending, 5)

    assert run(BufferConfig(), path, scenario) == ([1], True, True)
    assert stored(path) == (2, 2, 2)


def test_the_log_is_copied_into_the_file_every_few_writes(tmp_path: Path) -> None:
    """SQLite's own checkpoint is off (it would run under the writer lock): the database
    thread copies the log into the file itself, every ``CHECKPOINT_EVERY`` writes."""
    path = tmp_path / "buffer.db"
    big = Record("t", b"k", b"v" * 20_000, "id", "c", "e", "s")

    async def scenario(buffer: Buffer) -> object:
        sizes = [path.stat().st_size]
        for n in range(2 * CHECKPOINT_EVERY):
            await buffer.outbox.submit(f"key-{n}", [big])
            sizes.append(path.stat().st_size)
        return sizes

    sizes = run(BufferConfig(), path, scenario)
    assert isinstance(sizes, list)
    grew = [n for n in range(1, len(sizes)) if sizes[n] > sizes[n - 1]]
    assert grew, "nothing reached the database file: no checkpoint ran"
    assert sizes[-1] >= sizes[0] + CHECKPOINT_EVERY * 20_000
