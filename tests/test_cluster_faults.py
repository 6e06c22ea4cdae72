"""The delivery promise on a real three-broker KRaft cluster, replication factor 3 and
min.insync.replicas 2: under load a broker is killed (kill -9) and restarted, then the
partition leader's broker is stopped; then a second broker too, leaving one: writes stop
on the cluster, the gateway keeps accepting into its buffer and drains when the brokers
return. Every id answered 2xx is on the topic."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from devtools.kafka import LocalKafkaCluster
from tests.helpers import GatewayProcess, base_config, consume, write_config
from tests.load import Outcome, accepted_ids, drive, wait_drained, webhook_connector

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
PARTITIONS = 3


def load(url: str, count: int, fault: int = 0,
         inject: Callable[[], None] | None = None) -> list[Outcome]:
    """``count`` deliveries, 20 in flight; ``inject()`` runs (in a thread) once ``fault``
    answers came back."""
    async def after(done: int) -> None:
        if done == fault and inject is not None:
            await asyncio.to_thread(inject)

    deliveries = [str(uuid.uuid4()) for _ in range(count)]
    return asyncio.run(drive(f"{url}/webhooks/load", deliveries, after=after))


def in_sync(cluster: LocalKafkaCluster, topic: str) -> None:
    for partition in range(PARTITIONS):
        cluster.wait_in_sync(topic, partition, timeout=90)


def test_rf3_loses_nothing_through_a_killed_broker_a_stopped_leader_and_two_down(
        cluster: LocalKafkaCluster, tmp_path: Path) -> None:
    topic = f"rf3-{uuid.uuid4().hex[:8]}"
    cluster.create_topic(topic, partitions=PARTITIONS, replication=3,
                         config={"min.insync.replicas": "2"})
    in_sync(cluster, topic)
    cfg = base_config(cluster.bootstrap, tmp_path / "data", "unused.{source}")
    cfg["connectors"] = {"load": webhook_connector(topic)}
    gateway = GatewayProcess(write_config(tmp_path / "gateway.yaml", cfg),
                             cluster.bootstrap).start()
    outcomes: list[Outcome] = []
    try:
        # 1. kill -9 a broker mid-load, restart it once the load is through
        outcomes += load(gateway.url, 300, fault=100, inject=lambda: cluster.kill_node(3))
        cluster.start_node(3)
        in_sync(cluster, topic)

        # 2. stop the broker leading partition 0, mid-load
        leader = cluster.leader(topic, 0)
        outcomes += load(gateway.url, 300, fault=100, inject=lambda: cluster.stop_node(leader))

        # 3. a second broker down: one left, under min.insync.replicas; the gateway
        #    still answers 202 (durable in its buffer), and says Kafka is not ok
        second = next(n for n in (1, 2, 3) if n != leader)
        cluster.stop_node(second)
        stalled = load(gateway.url, 100)
        assert {o.status for o in stalled} == {202}, [o for o in stalled if o.status != 202][:3]
        outcomes += stalled
        cluster.start_node(leader)
        cluster.start_node(second)
        in_sync(cluster, topic)
        wait_drained(gateway.url, timeout=180)
        assert httpx.get(f"{gateway.url}/readyz", timeout=5).json()["ready"]
    finally:
        gateway.stop()

    assert {o.status for o in outcomes} == {202}  # whatever the cluster did meanwhile
    accepted = accepted_ids(outcomes)
    assert len(accepted) == 700
    on_topic = [orjson.loads(r.value)["id"]
                for r in consume(cluster.bootstrap, topic, expect=len(accepted), timeout=90)]
    missing = accepted - set(on_topic)
    assert not missing, f"{len(missing)} ids answered 2xx are not on the topic"
