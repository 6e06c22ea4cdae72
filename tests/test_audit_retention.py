"""governance.retention_days on the audit trail (gateway/audit/retention.py): a
connector's lines older than its retention leave every file of the trail; every other
line stays, byte for byte and in order, while writers keep appending."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson

from gateway.audit import AuditLog, verify_files
from gateway.audit.retention import expire

DAY = 86400.0


def line(ts: float, cid: str | None, outcome: str = "accepted") -> bytes:
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".000Z"
    return orjson.dumps({"ts": text, "connector_id": cid, "outcome": outcome, "reason": None,
                         "event_ids": [], "request_id": None, "remote_addr": None,
                         "body_sha256": None, "bytes": None}) + b"\n"


def test_expired_lines_of_a_connector_leave_every_file_and_nothing_else(
        tmp_path: Path) -> None:
    now = time.time()
    trail = tmp_path / "audit.jsonl"
    old, recent = now - 10 * DAY, now - 1 * DAY
    (tmp_path / "audit.jsonl.2").write_bytes(
        line(old, "payments") + line(old, "github") + line(old, None))
    (tmp_path / "audit.jsonl.1").write_bytes(line(old, "payments") + line(recent, "payments"))
    trail.write_bytes(line(recent, "github") + line(now, "payments"))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    removed = expire(trail, {"payments": 7 * DAY}, interval=3600, now=now)

    assert removed == 2
    assert (tmp_path / "audit.jsonl.2").read_bytes() == line(old, "github") + line(old, None)
    assert (tmp_path / "audit.jsonl.1").read_bytes() == line(recent, "payments")
    assert trail.read_bytes() == before["audit.jsonl"]  # nothing expired: not rewritten
    assert verify_files(trail).ok
    # a second sweep within the interval (this process or another) does nothing
    (tmp_path / "audit.jsonl.1").write_bytes(line(old, "payments"))
    assert expire(trail, {"payments": 7 * DAY}, interval=3600, now=now + 60) is None
    assert expire(trail, {"payments": 7 * DAY}, interval=3600, now=now + 3601) == 1


def test_the_writer_sweeps_while_it_writes_and_loses_no_line(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    now = time.time()
    trail.write_bytes(line(now - 40 * DAY, "payments") * 500 + line(now - 40 * DAY, "crm"))

    async def run() -> None:
        log = AuditLog(trail, retention={"payments": 30 * DAY}, retention_interval=0.05)
        other = AuditLog(trail)  # another process's writer, appending meanwhile
        await log.open()
        await other.open()
        for i in range(300):
            log.record("accepted", connector_id="payments", request_id=f"p{i}")
            other.record("accepted", connector_id="crm", request_id=f"c{i}")
            if i % 50 == 0:
                await asyncio.sleep(0.06)  # sweeps run between writes
        await asyncio.sleep(0.2)
        await other.close()
        await log.close()

    asyncio.run(run())
    lines = [orjson.loads(raw) for raw in trail.read_bytes().splitlines()]
    assert not any(d["connector_id"] == "payments" and d["ts"].startswith(
        time.strftime("%Y-%m-%d", time.gmtime(now - 40 * DAY))) for d in lines)
    fresh = [d["request_id"] for d in lines if d["request_id"]]
    assert sorted(fresh) == sorted([f"p{i}" for i in range(300)] + [f"c{i}" for i in range(300)])
    assert sum(1 for d in lines if d["connector_id"] == "crm" and d["request_id"] is None) == 1


def test_gateway_run_enforces_the_connectors_retention_days(tmp_path: Path) -> None:
    from tests.helpers import base_config, thread_server, write_config

    data = tmp_path / "data"
    data.mkdir()
    now = time.time()
    (data / "audit.jsonl").write_bytes(line(now - 31 * DAY, "payments")
                                       + line(now - 31 * DAY, "crm"))
    cfg = base_config("127.0.0.1:1", data, "events.{source}")
    cfg["connectors"] = {
        "payments": {"type": "stripe", "config": {"secret": "whsec-payments-value-7"},
                     "governance": {"retention_days": 30}},
        "crm": {"type": "github", "config": {"secret": "crm-github-secret-value"}}}
    with thread_server(write_config(tmp_path / "g.yaml", cfg)) as server:
        deadline = time.monotonic() + 10
        while b'"payments"' in (data / "audit.jsonl").read_bytes():
            assert time.monotonic() < deadline, "the old payments line is still there"
            time.sleep(0.05)
        assert server.data_dir == data
    first = (data / "audit.jsonl").read_bytes().splitlines()[0]
    assert orjson.loads(first)["connector_id"] == "crm"
