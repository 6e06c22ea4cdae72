"""/metrics totals are the same whichever worker a scrape reaches."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest

from gateway.buffer import Buffer
from gateway.config import BufferConfig
from gateway.metrics import Metrics, MetricsSync, render
from tests.helpers import GatewayProcess, base_config, write_config
from tests.load import drive, webhook_connector


def requests_total(text: str, connector_id: str, outcome: str) -> int:
    m = re.search(rf'^gateway_requests_total\{{connector_id="{connector_id}",'
                  rf'outcome="{outcome}"\}} (\S+)$', text, re.M)
    return int(float(m.group(1))) if m else 0


def gauge(text: str, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, name
    return float(m.group(1))


def test_workers_share_their_counts_through_the_buffer(tmp_path: Path) -> None:
    async def run() -> tuple[bytes, bytes]:
        buffers = [Buffer(tmp_path / "buffer.db", BufferConfig()) for _ in range(2)]
        for b in buffers:
            await b.open()
        try:
            workers = [MetricsSync(Metrics(), b) for b in buffers]
            for n, sync in zip((3, 5), workers, strict=True):
                for _ in range(n):
                    sync.metrics.count("gh", "accepted")
                sync.metrics.observe(0.003)
                await sync.sync()
            await workers[0].sync()  # now it has seen the second one's snapshot
            both = render(workers[0].totals(), {"gateway_workers_reporting": 2})
            # a worker silent for longer than the TTL drops out of the totals
            await buffers[1].status.share_metrics(workers[1].worker, b"{}", time.time() + 1)
            await workers[0].sync()
            alone = render(workers[0].totals(), {})
            return both, alone
        finally:
            for b in buffers:
                await b.close()

    both, alone = asyncio.run(run())
    text = both.decode()
    assert requests_total(text, "gh", "accepted") == 8
    assert gauge(text, "gateway_request_duration_seconds_count") == 2
    assert gauge(text, "gateway_workers_reporting") == 2
    assert requests_total(alone.decode(), "gh", "accepted") == 3


def test_two_instances_sharing_a_data_directory_never_report_each_others_counts(
        tmp_path: Path) -> None:
    """Each ``gateway run`` sums its own workers and relay (and a ``gateway poll`` run on
    its own beside it), not another instance's: a sum() over both counts each once."""
    async def run() -> list[str]:
        buffer = Buffer(tmp_path / "buffer.db", BufferConfig())
        await buffer.open()
        try:
            syncs = [MetricsSync(Metrics(), buffer), MetricsSync(Metrics(), buffer),
                     MetricsSync(Metrics(), buffer, role="relay")]
            syncs[0].instance, syncs[1].instance = "run-a", "run-b"  # the poller: standalone
            for n, sync in zip((3, 5, 7), syncs, strict=True):
                for _ in range(n):
                    sync.metrics.count("gh", "accepted")
                await sync.sync()
            for sync in syncs[:2]:
                await sync.sync()
            return [render(sync.totals(), {}).decode() for sync in syncs[:2]]
        finally:
            await buffer.close()

    a, b = asyncio.run(run())
    assert requests_total(a, "gh", "accepted") == 3 + 7
    assert requests_total(b, "gh", "accepted") == 5 + 7


def test_label_values_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.metrics

    monkeypatch.setattr(gateway.metrics, "MAX_LABELS", 3)
    metrics = Metrics()
    for cid in ("a", "b", "c", "d", "e"):
        metrics.count(cid, "rejected")
    assert metrics.requests == {("a", "rejected"): 1, ("b", "rejected"): 1,
                                ("c", "rejected"): 1, ("_other", "rejected"): 2}


@pytest.mark.kafka
def test_two_workers_report_the_same_totals(kafka_bootstrap: str, tmp_path: Path) -> None:
    cfg = base_config(kafka_bootstrap, tmp_path / "data", "unused.{source}")
    cfg["connectors"] = {"load": webhook_connector(f"metrics-{uuid.uuid4().hex[:8]}")}
    gw = GatewayProcess(write_config(tmp_path / "gateway.yaml", cfg), kafka_bootstrap,
                        workers=2).start()
    try:
        outcomes = asyncio.run(drive(f"{gw.url}/webhooks/load",
                                     [str(uuid.uuid4()) for _ in range(40)]))
        assert {o.status for o in outcomes} == {202}
        deadline = time.monotonic() + 20
        seen: list[tuple[int, float]] = []
        while time.monotonic() < deadline:
            text = httpx.get(f"{gw.url}/metrics").text  # a new connection: any worker
            seen.append((requests_total(text, "load", "accepted"),
                         gauge(text, "gateway_workers_reporting")))
            if len(seen) >= 6 and all(s == (40, 2) for s in seen[-6:]):
                break
            time.sleep(0.5)
        assert seen[-6:] == [(40, 2)] * 6, seen
    finally:
        gw.stop()
