"""The delivery promise under faults, against a real broker that these tests stop and start.

Every id answered 2xx must end up on the topic: through a broker outage, a kill -9 of the
gateway, a worker killed alone, a full buffer; and racing identical deliveries publish once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from devtools.localkafka import LocalKafka
from tests.helpers import GatewayProcess, base_config, consume, write_config
from tests.load import Outcome, accepted_ids, drive, wait_drained, webhook_connector

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def own_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A broker of this module's own, which the tests may stop and restart."""
    kafka = LocalKafka(data_dir=tmp_path_factory.mktemp("own-kafka"))
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.close()
        if kafka.proc is None:
            import shutil
            shutil.rmtree(kafka.dir, ignore_errors=True)


def ensure_running(kafka: LocalKafka) -> None:
    if kafka.proc is None or kafka.proc.poll() is not None:
        kafka.start()


def topic_ids(bootstrap: str, topic: str, expect: int) -> list[str]:
    return [orjson.loads(r.value)["id"] for r in consume(bootstrap, topic, expect=expect,
                                                         timeout=60)]


def gateway_config(tmp_path: Path, bootstrap: str, topic: str, **buffer: object) -> Path:
    cfg = base_config(bootstrap, tmp_path / "data", "unused.{source}")
    cfg["connectors"] = {"load": webhook_connector(topic)}
    if buffer:
        cfg["buffer"] = buffer
    return write_config(tmp_path / "gateway.yaml", cfg)


def deliveries(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def audit_lines(data_dir: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in (data_dir / "audit.jsonl").read_bytes().splitlines()]


def accepted_in_order(data_dir: Path) -> list[str]:
    """Event ids in the order the gateway made them durable (its audit trail)."""
    return [i for line in audit_lines(data_dir) if line["outcome"] == "accepted"
            for i in line["event_ids"]]


def test_broker_outage_mid_load_loses_nothing_and_keeps_order(
        own_kafka: LocalKafka, tmp_path: Path) -> None:
    ensure_running(own_kafka)
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    gw = GatewayProcess(gateway_config(tmp_path, own_kafka.bootstrap, topic),
                        own_kafka.bootstrap).start()
    readiness_during_outage: dict[str, object] = {}
    try:
        async def fault(n: int) -> None:
            if n == 100:  # stop the broker with deliveries in flight
                await asyncio.to_thread(own_kafka.stop)
            if n == 300:
                async with httpx.AsyncClient() as c:
                    readiness_during_outage.update((await c.get(gw.url + "/readyz")).json())

        outcomes = asyncio.run(drive(f"{gw.url}/webhooks/load", deliveries(400), after=fault))
        assert all(o.status == 202 for o in outcomes), Counter(o.status for o in outcomes)
        kafka_state = readiness_during_outage["kafka"]
        assert isinstance(kafka_state, dict)
        assert readiness_during_outage["ready"] is True  # the buffer has room
        own_kafka.start()
        wait_drained(gw.url)
        on_topic = topic_ids(own_kafka.bootstrap, topic, expect=400)
        assert accepted_ids(outcomes) <= set(on_topic)
        first_seen = list(dict.fromkeys(on_topic))
        assert first_seen == accepted_in_order(tmp_path / "data")  # order per key kept
    finally:
        gw.stop()


def test_kill_9_mid_load_then_restart_loses_nothing(
        own_kafka: LocalKafka, tmp_path: Path) -> None:
    ensure_running(own_kafka)
    topic = f"kill-{uuid.uuid4().hex[:8]}"
    config = gateway_config(tmp_path, own_kafka.bootstrap, topic)
    gw = GatewayProcess(config, own_kafka.bootstrap).start()
    try:
        async def fault(n: int) -> None:
            if n == 150:
                gw.kill()

        outcomes = asyncio.run(drive(f"{gw.url}/webhooks/load", deliveries(400), after=fault,
                                     request_timeout=10))
        accepted = accepted_ids(outcomes)
        assert len(accepted) >= 150
        assert any(o.status is None for o in outcomes)  # the kill really cut requests off
        gw = GatewayProcess(config, own_kafka.bootstrap, port=gw.port).start()
        wait_drained(gw.url)
        assert accepted <= set(topic_ids(own_kafka.bootstrap, topic, expect=len(accepted)))
    finally:
        gw.stop()


def worker_pids(supervisor: int) -> list[int]:
    """uvicorn's worker processes (not multiprocessing's resource tracker)."""
    out = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(supervisor)],
                         capture_output=True, text=True, check=False).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "spawn_main" in line]


def test_two_workers_one_killed_alone_then_all_killed(
        own_kafka: LocalKafka, tmp_path: Path) -> None:
    ensure_running(own_kafka)
    topic = f"workers-{uuid.uuid4().hex[:8]}"
    config = gateway_config(tmp_path, own_kafka.bootstrap, topic)
    gw = GatewayProcess(config, own_kafka.bootstrap, workers=2).start()
    assert gw.proc is not None
    try:
        deadline = time.monotonic() + 20
        while len(worker_pids(gw.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        killed: list[int] = []

        async def fault(n: int) -> None:
            assert gw.proc is not None
            if n == 100:
                victim = worker_pids(gw.proc.pid)[0]
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)

        outcomes = asyncio.run(drive(f"{gw.url}/webhooks/load", deliveries(400), after=fault,
                                     request_timeout=10))
        assert killed
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # uvicorn replaces the dead worker
            alive = worker_pids(gw.proc.pid)
            if len(alive) == 2 and killed[0] not in alive:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the killed worker was not replaced: {worker_pids(gw.proc.pid)}")
        accepted = accepted_ids(outcomes)
        assert len(accepted) >= 300
        wait_drained(gw.url)
        on_topic = set(topic_ids(own_kafka.bootstrap, topic, expect=len(accepted)))
        assert accepted <= on_topic

        # then the whole process group, mid-load, and a restart
        async def fault_all(n: int) -> None:
            if n == 100:
                gw.kill()

        more = asyncio.run(drive(f"{gw.url}/webhooks/load", deliveries(300), after=fault_all,
                                 request_timeout=10))
        accepted |= accepted_ids(more)
        gw = GatewayProcess(config, own_kafka.bootstrap, workers=2, port=gw.port).start()
        wait_drained(gw.url)
        assert accepted <= set(topic_ids(own_kafka.bootstrap, topic, expect=len(accepted)))
    finally:
        gw.stop()


def test_racing_identical_deliveries_publish_exactly_once(
        own_kafka: LocalKafka, tmp_path: Path) -> None:
    ensure_running(own_kafka)
    topic = f"race-{uuid.uuid4().hex[:8]}"
    gw = GatewayProcess(gateway_config(tmp_path, own_kafka.bootstrap, topic),
                        own_kafka.bootstrap, workers=2).start()
    try:
        unique = deliveries(50)
        copies = [d for d in unique for _ in range(8)]  # 8 identical deliveries each, racing
        outcomes = asyncio.run(drive(f"{gw.url}/webhooks/load", copies, concurrency=40))
        by_delivery: dict[str, list[Outcome]] = {}
        for o in outcomes:
            by_delivery.setdefault(o.delivery, []).append(o)
        for group in by_delivery.values():
            statuses = sorted(o.status or 0 for o in group)
            assert statuses == [200] * 7 + [202], statuses
            assert len({tuple(o.event_ids) for o in group}) == 1  # same id for every copy
        wait_drained(gw.url)
        on_topic = topic_ids(own_kafka.bootstrap, topic, expect=50)
        assert len(on_topic) == 50
        assert set(on_topic) == accepted_ids(outcomes)
    finally:
        gw.stop()


def test_full_buffer_answers_503_and_loses_nothing(
        own_kafka: LocalKafka, tmp_path: Path) -> None:
    ensure_running(own_kafka)
    topic = f"full-{uuid.uuid4().hex[:8]}"
    gw = GatewayProcess(gateway_config(tmp_path, own_kafka.bootstrap, topic, max_events=50,
                                       retry_after_seconds=7),
                        own_kafka.bootstrap).start()
    try:
        own_kafka.stop()  # nothing drains: the buffer fills
        outcomes = asyncio.run(drive(f"{gw.url}/webhooks/load", deliveries(80)))
        statuses = Counter(o.status for o in outcomes)
        assert statuses == {202: 50, 503: 30}, statuses
        assert {o.retry_after for o in outcomes if o.status == 503} == {"7"}
        deadline = time.monotonic() + 60
        ready = httpx.get(gw.url + "/readyz")
        while ready.json()["kafka"]["ok"] and time.monotonic() < deadline:
            time.sleep(0.5)  # the relay notices the broker is gone
            ready = httpx.get(gw.url + "/readyz")
        assert ready.status_code == 503, ready.text
        assert "buffer: full" in ready.json()["reason"], ready.text
        assert "kafka" in ready.json()["reason"], ready.text
        failed: Counter[str] = Counter()
        deadline = time.monotonic() + 10
        while sum(failed.values()) < 30 and time.monotonic() < deadline:
            time.sleep(0.1)  # audit lines are written in batches, moments later
            failed = Counter(line["reason"] for line in audit_lines(tmp_path / "data")
                             if line["outcome"] == "failed")
        assert failed == {"buffer_full": 30}

        own_kafka.start()
        wait_drained(gw.url)
        accepted = accepted_ids(outcomes)
        assert set(topic_ids(own_kafka.bootstrap, topic, expect=50)) == accepted
        again = asyncio.run(drive(f"{gw.url}/webhooks/load", deliveries(5)))
        assert {o.status for o in again} == {202}
    finally:
        gw.stop()


def test_local_kafka_dies_with_its_owner(tmp_path: Path) -> None:
    """No stray JVM: a broker's owner killed with SIGKILL takes the broker with it."""
    script = ("from devtools.localkafka import LocalKafka; import sys, time\n"
              "k = LocalKafka(); k.start(); print(k.proc.pid, flush=True); time.sleep(600)\n")
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parent.parent,
                             env={**os.environ, "PYTHONPATH": "."})
    try:
        assert owner.stdout is not None
        stdout = owner.stdout
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(stdout.readline()))
        reader.start()
        reader.join(120)
        assert line, "the owner did not start a broker"
        assert line[0].strip(), "the owner did not start a broker"
        jvm = int(line[0])
        os.kill(jvm, 0)  # alive
        owner.kill()
        owner.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(jvm, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the broker outlived its owner")
    finally:
        owner.kill()
        owner.wait(10)
        if owner.stdout is not None:
            owner.stdout.close()


def test_a_paused_broker_is_reported_while_the_relay_keeps_running(
        own_kafka: LocalKafka, tmp_path: Path) -> None:
    """SIGSTOP on the broker: publishing hangs until requests time out. /readyz must keep
    saying what is true (Kafka unreachable, the relay alive and leading), never that the
    relay is not running; and everything accepted meanwhile arrives once it resumes."""
    ensure_running(own_kafka)
    assert own_kafka.proc is not None
    topic = f"paused-{uuid.uuid4().hex[:8]}"
    gw = GatewayProcess(gateway_config(tmp_path, own_kafka.bootstrap, topic),
                        own_kafka.bootstrap).start()
    seen: list[dict[str, Any]] = []
    try:
        before = asyncio.run(drive(f"{gw.url}/webhooks/load", deliveries(20)))
        wait_drained(gw.url)
        os.kill(own_kafka.proc.pid, signal.SIGSTOP)
        try:
            during = asyncio.run(drive(f"{gw.url}/webhooks/load", deliveries(20)))
            deadline = time.monotonic() + 25
            while time.monotonic() < deadline:
                seen.append(httpx.get(gw.url + "/readyz", timeout=5).json())
                time.sleep(0.5)
        finally:
            os.kill(own_kafka.proc.pid, signal.SIGCONT)
        errors = {s["kafka"]["error"] for s in seen}
        assert not [e for e in errors if e and "not running" in e], errors
        assert all(s["relay"]["leader"] for s in seen)
        assert any(not s["kafka"]["ok"] for s in seen)  # the pause was noticed
        wait_drained(gw.url)
        accepted = accepted_ids(before) | accepted_ids(during)
        assert len(accepted) == 40
        assert accepted <= set(topic_ids(own_kafka.bootstrap, topic, expect=40))
    finally:
        gw.stop()
