"""A three-node KRaft cluster from the launcher: acks=all with min.insync.replicas=2 goes on
through a kill -9 of the partition's leader and a graceful stop of a node, and a node
restarted on its ports and data catches up (back in the ISR)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devtools.kafka import LocalKafkaCluster, PartitionState

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def topic(cluster: LocalKafkaCluster) -> str:
    name = f"rf3-{uuid.uuid4().hex[:8]}"
    cluster.create_topic(name, replication=3, config={"min.insync.replicas": "2"})
    cluster.wait_in_sync(name)
    return name


async def produce(bootstrap: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                request_timeout_ms=30000)
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, value), 60)
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, expect: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + 30
        while len(values) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            values += [r.value for records in batch.values() for r in records]
    finally:
        await consumer.stop()
    return values


def eventually(cluster: LocalKafkaCluster, topic: str,
               check: Callable[[PartitionState], bool]) -> PartitionState:
    """The partition's state once ``check`` holds (metadata reaches brokers a moment
    after the controller decides)."""
    deadline = time.monotonic() + 15
    state = cluster.partition(topic)
    while not check(state) and time.monotonic() < deadline:
        time.sleep(0.2)
        state = cluster.partition(topic)
    assert check(state), state
    return state


def test_acks_all_survives_a_killed_leader_which_rejoins_on_restart(
        cluster: LocalKafkaCluster, topic: str) -> None:
    state = cluster.partition(topic)
    assert sorted(state.replicas) == [1, 2, 3]
    asyncio.run(produce(cluster.bootstrap, topic, b"before"))
    leader = state.leader
    port = cluster.node(leader).port

    cluster.kill_node(leader)
    asyncio.run(produce(cluster.bootstrap, topic, b"leader killed"))
    eventually(cluster, topic, lambda s: s.leader not in (leader, -1)
               and leader not in s.isr and len(s.isr) == 2)

    cluster.start_node(leader)
    assert cluster.node(leader).port == port
    cluster.wait_in_sync(topic)
    assert asyncio.run(consume(cluster.bootstrap, topic, 2)) == [b"before", b"leader killed"]


def test_a_gracefully_stopped_node_hands_over_and_comes_back(
        cluster: LocalKafkaCluster, topic: str) -> None:
    leader = cluster.leader(topic)
    cluster.stop_node(leader)  # a controlled shutdown moves leadership first
    assert not cluster.node(leader).running
    eventually(cluster, topic, lambda s: s.leader not in (leader, -1))
    asyncio.run(produce(cluster.bootstrap, topic, b"one node stopped"))

    cluster.start_node(leader)
    cluster.wait_in_sync(topic)
    assert asyncio.run(consume(cluster.bootstrap, topic, 1)) == [b"one node stopped"]
