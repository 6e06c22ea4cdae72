"""What the launcher asks a running broker, through aiokafka over PLAINTEXT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

READY_TOPIC = "__gateway_ready"


@dataclass(frozen=True)
class PartitionState:
    leader: int                # node id; -1 while the partition has none
    replicas: tuple[int, ...]
    isr: tuple[int, ...]       # the in-sync replicas


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Refused connections are expected while a broker boots: keep aiokafka's log quiet."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.asynccontextmanager
async def admin(bootstrap: str) -> AsyncIterator[Any]:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000,
                                 client_id="gateway-localkafka")
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def create_topic(bootstrap: str, name: str, *, partitions: int = 1,
                       replication: int = 1, config: Mapping[str, str] | None = None,
                       exist_ok: bool = False) -> None:
    topic = NewTopic(name, partitions, replication, topic_configs=dict(config or {}))
    async with admin(bootstrap) as client:
        try:
            await client.create_topics([topic])
        except TopicAlreadyExistsError:
            if not exist_ok:
                raise


async def produce_once(bootstrap: str, *, create: bool = False, replication: int = 1) -> None:
    """One record on READY_TOPIC, acknowledged by all in-sync replicas."""
    if create:  # a broker that does not create topics on first use
        await create_topic(bootstrap, READY_TOPIC, replication=replication, exist_ok=True)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                request_timeout_ms=5000, client_id="gateway-readiness")
    try:
        await producer.start()
        await asyncio.wait_for(producer.send_and_wait(READY_TOPIC, b"ok"), 10)
    finally:
        with contextlib.suppress(Exception):
            await producer.stop()


async def broker_ids(bootstrap: str) -> set[int]:
    """The brokers the cluster's metadata lists (registered and not fenced)."""
    async with admin(bootstrap) as client:
        described = await client.describe_cluster()
    return {int(b["node_id"]) for b in described["brokers"]}


async def partition_state(bootstrap: str, topic: str, partition: int = 0) -> PartitionState:
    async with admin(bootstrap) as client:
        topics = await client.describe_topics([topic])
    for meta in topics:
        for p in meta["partitions"]:
            if meta["topic"] == topic and p["partition"] == partition:
                return PartitionState(int(p["leader"]), tuple(p["replicas"]), tuple(p["isr"]))
    raise LookupError(f"{topic}[{partition}] is not in the cluster's metadata")
