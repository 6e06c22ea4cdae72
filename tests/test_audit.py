"""The audit writer against files that really fail: ``/dev/full``, a full filesystem (a
64 KiB tmpfs, or ``RLIMIT_FSIZE`` in a child process), a directory that is not there, and
two processes rotating the same file. Plus ``verify_files`` on a torn line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from gateway.audit import AuditLog, verify_files

ROOT = Path(__file__).resolve().parent.parent


def record(audit: AuditLog, prefix: str, start: int, stop: int) -> None:
    for i in range(start, stop):
        audit.record("accepted", connector_id="c", event_ids=[f"{prefix}-{i}"],
                     request_id=f"{prefix}-{i}", body_sha256="0" * 64, size=100)


async def until(condition: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def request_ids(text: bytes) -> list[str]:
    return [orjson.loads(line)["request_id"] for line in text.splitlines()]


def events(logs: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


def test_dev_full_logs_once_counts_errors_and_keeps_writing() -> None:
    async def run() -> None:
        audit = AuditLog(Path("/dev/full"))
        with capture_logs() as logs:
            await audit.open()
            record(audit, "secret-content", 0, 300)
            await until(lambda: audit.errors >= 3)
            errors = audit.errors
            record(audit, "secret-content", 300, 310)
            await until(lambda: audit.errors > errors)  # the writer is alive, retrying
            assert audit.backlog == 310
            assert audit.dropped == 0
            await audit.close()
        [failed] = events(logs, "audit_write_failed")
        assert failed["error"] == "ENOSPC"
        assert not events(logs, "task_failed")
        assert "secret-content" not in json.dumps(logs, default=str)
        [lost] = events(logs, "audit_lines_lost")  # closing with the disk still full
        assert lost["lines"] == 310

    asyncio.run(run())


async def fill_and_recover(path: Path, fill: Callable[[], None],
                           free: Callable[[], None]) -> dict[str, Any]:
    """20 lines written, the disk filled, 100 lines recorded, space freed, 10 more.

    Returns what the file held while full and at the end, the counters and the logs.
    """
    audit = AuditLog(path, max_backlog=10_000)
    with capture_logs() as logs:
        await audit.open()
        record(audit, "before", 0, 20)
        await until(lambda: path.exists() and path.read_bytes().count(b"\n") == 20)
        fill()
        record(audit, "during", 0, 100)
        await until(lambda: audit.errors >= 3)
        while_full = await asyncio.to_thread(path.read_bytes)
        free()
        await until(lambda: audit.backlog == 0)
        record(audit, "after", 0, 10)
        await until(lambda: audit.backlog == 0)
        await audit.close()
    final = await asyncio.to_thread(path.read_bytes)
    return {"while_full": while_full.decode(), "final": final.decode(),
            "errors": audit.errors, "dropped": audit.dropped,
            "logs": json.loads(json.dumps(logs, default=str))}


def check_full_then_recovered(result: dict[str, Any], error: str) -> None:
    before = [f"before-{i}" for i in range(20)]
    # The write that ran out of space was partly done: it was rolled back, whole lines only.
    assert result["while_full"].endswith("\n")
    assert request_ids(result["while_full"].encode()) == before
    # Once space came back, every line is there exactly once, in order.
    assert request_ids(result["final"].encode()) == (
        before + [f"during-{i}" for i in range(100)] + [f"after-{i}" for i in range(10)])
    assert result["errors"] >= 3
    assert result["dropped"] == 0
    [failed] = events(result["logs"], "audit_write_failed")
    assert failed["error"] == error
    [recovered] = events(result["logs"], "audit_write_recovered")
    assert (recovered["waited"], recovered["dropped"]) == (100, 0)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB filesystem (tmpfs); skipped where mounting is not allowed."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                       check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("mounting a tmpfs is not allowed here (the RLIMIT_FSIZE variant runs)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)


def test_full_filesystem_then_space_returns(small_fs: Path) -> None:
    filler = small_fs / "filler"

    def fill() -> None:
        with filler.open("wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"x" * 4096)
            except OSError:
                pass

    result = asyncio.run(fill_and_recover(small_fs / "audit.jsonl", fill, filler.unlink))
    check_full_then_recovered(result, "ENOSPC")


RLIMIT_CHILD = """
import asyncio, json, resource, signal, sys
from pathlib import Path
from tests.test_audit import fill_and_recover

path = Path(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

def fill():  # the next write gets 1000 bytes in (a short write), then EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 1000, hard))

def free():
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

print(json.dumps(asyncio.run(fill_and_recover(path, fill, free))))
"""


def test_file_size_limit_then_lifted(tmp_path: Path) -> None:
    """The same with RLIMIT_FSIZE (works without root), in a child process."""
    out = subprocess.run([sys.executable, "-c", RLIMIT_CHILD, str(tmp_path / "audit.jsonl")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    check_full_then_recovered(json.loads(out.stdout.splitlines()[-1]), "EFBIG")


def test_backlog_keeps_the_newest_lines_and_counts_the_dropped(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    path = blocker / "audit.jsonl"

    async def run() -> list[MutableMapping[str, Any]]:
        audit = AuditLog(path, max_backlog=100)
        with capture_logs() as logs:
            await audit.open()  # does not fail: the writer waits for the directory
            record(audit, "r", 0, 60)
            await until(lambda: audit.errors >= 1)
            record(audit, "r", 60, 250)
            await until(lambda: audit.dropped == 150 and audit.backlog == 100)
            blocker.unlink()  # the directory can be made now
            await until(lambda: audit.backlog == 0)
            assert audit.dropped == 150
            await audit.close()
        return logs

    logs = asyncio.run(run())
    assert request_ids(path.read_bytes()) == [f"r-{i}" for i in range(150, 250)]
    [failed] = events(logs, "audit_write_failed")
    assert failed["error"] in {"EEXIST", "ENOTDIR"}
    [recovered] = events(logs, "audit_write_recovered")
    assert (recovered["waited"], recovered["dropped"]) == (100, 150)


WRITER_CHILD = """
import asyncio, sys
from pathlib import Path
from gateway.audit import AuditLog

async def main(path, name, n, max_bytes, keep):
    audit = AuditLog(Path(path), max_bytes=max_bytes, keep=keep)
    await audit.open()
    for i in range(n):
        audit.record("accepted", connector_id=name, event_ids=[f"{name}-{i}"],
                     request_id=f"{name}-{i}")
        if i % 25 == 24:
            await asyncio.sleep(0.003)
    await audit.close()

asyncio.run(main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])))
"""


@pytest.mark.parametrize("keep", [3, 1000])
def test_two_processes_rotate_the_same_file(tmp_path: Path, keep: int) -> None:
    path, n, max_bytes = tmp_path / "audit.jsonl", 1500, 4096
    writers = [subprocess.Popen([sys.executable, "-c", WRITER_CHILD, str(path), name, str(n),
                                 str(max_bytes), str(keep)], cwd=ROOT, stderr=subprocess.PIPE)
               for name in ("a", "b")]
    for w in writers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err.decode()

    rotated = sorted((p for p in tmp_path.iterdir() if p.name.startswith("audit.jsonl.")
                      and p.name.rsplit(".", 1)[1].isdigit()),
                     key=lambda p: int(p.name.rsplit(".", 1)[1]))
    files = [*reversed(rotated), path]  # oldest first
    assert 3 <= len(rotated) <= keep
    if keep == 3:
        assert [p.name for p in rotated] == ["audit.jsonl.1", "audit.jsonl.2", "audit.jsonl.3"]
    assert all(p.stat().st_size <= max_bytes for p in files)
    report = verify_files(path)
    assert report.ok, report.summary()

    ids = [i for p in files for i in request_ids(p.read_bytes())]
    assert len(ids) == len(set(ids))  # nothing written twice
    for name in ("a", "b"):
        mine = [int(i.split("-")[1]) for i in ids if i.startswith(name + "-")]
        if keep == 1000:  # everything kept: nothing lost
            assert mine == list(range(n))
        else:  # only the oldest files went: what is left is the end, without a gap
            assert mine == list(range(n - len(mine), n))


def test_verify_reports_a_torn_line_with_file_and_line_number(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"

    async def write() -> None:
        audit = AuditLog(path)
        await audit.open()
        record(audit, "r", 0, 7)
        await audit.close()

    asyncio.run(write())
    lines = path.read_bytes().splitlines(keepends=True)
    clean = verify_files(path)
    assert clean.ok, clean.summary()
    assert [(f.path, f.lines, f.bad) for f in clean.files] == [(path, 7, 0)]

    rotated = path.with_name("audit.jsonl.1")
    rotated.write_bytes(b"".join(lines[:3]))
    # line 2: half a line, then the next one (what an unrolled-back short write leaves)
    path.write_bytes(lines[3] + lines[4][:40] + lines[5] + lines[6]
                     + b'{"ts": "x", "outcome": "maybe"}\n' + lines[6][:30])
    report = verify_files(path)
    assert not report.ok
    assert [(f.path, f.lines, f.bad) for f in report.files] == [(rotated, 3, 0), (path, 5, 3)]
    assert [(b.path, b.line) for b in report.bad_lines] == [(path, 2), (path, 4), (path, 5)]
    summary = report.summary()
    assert f"{path}:2:" in summary
    assert f"{path}:5:" in summary
    assert f"{path}:4: missing connector_id" in summary


def test_verify_without_any_file_is_not_ok(tmp_path: Path) -> None:
    report = verify_files(tmp_path / "missing.jsonl")
    assert not report.ok
    assert "missing.jsonl" in report.summary()


def test_close_writes_the_batch_the_writer_had_taken(tmp_path: Path) -> None:
    """Closing cancels the writer; a batch it had handed to the I/O thread, not yet
    started there, was cancelled with it (lost in most of these runs before the fix)."""
    async def once(path: Path) -> int:
        audit = AuditLog(path)
        await audit.open()
        record(audit, "r", 0, 500)
        await asyncio.sleep(0)  # the writer takes the lines and submits them
        await asyncio.sleep(0)
        await audit.close()
        return (await asyncio.to_thread(path.read_bytes)).count(b"\n")

    async def run() -> list[int]:
        return [await once(tmp_path / f"audit-{k}.jsonl") for k in range(20)]

    assert asyncio.run(run()) == [500] * 20


def test_recording_is_only_an_append(tmp_path: Path) -> None:
    """``record`` does no I/O: with the writer not started, nothing reaches the file."""
    audit = AuditLog(tmp_path / "audit.jsonl")
    record(audit, "r", 0, 5)
    assert audit.backlog == 5
    assert not os.path.exists(tmp_path / "audit.jsonl")
