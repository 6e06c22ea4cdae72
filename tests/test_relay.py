"""The relay against the real broker: batched publishing lands each record where the
producer's own ``send`` would have put it, in order per key, headers intact."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

from gateway.audit import AuditLog
from gateway.buffer import Buffer, Record
from gateway.config import BufferConfig
from gateway.kafka_settings import KafkaConfig
from gateway.relay import Relay
from tests.helpers import consume

pytestmark = pytest.mark.kafka

PARTITIONS = 3


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS,
                                            replication_factor=1)])
    finally:
        await admin.close()


def test_batches_go_to_the_keys_partitions_in_order(kafka_bootstrap: str,
                                                    tmp_path: Path) -> None:
    topic = f"relay-{uuid.uuid4().hex[:8]}"
    keys = [f"key-{k}".encode() for k in range(7)]
    # 3 segments of 40 records, keys interleaved; 20 KiB values, so that batches fill up
    segments = [[Record(topic, keys[n % len(keys)], b"%d|" % n + b"x" * 20480, f"id-{n}",
                        "c", "e.t", "s") for n in range(s * 40, (s + 1) * 40)]
                for s in range(3)]

    async def run() -> None:
        await create_topic(kafka_bootstrap, topic)
        buffer = Buffer(tmp_path / "buffer.db", BufferConfig())
        audit = AuditLog(tmp_path / "audit.jsonl")
        await buffer.open()
        await audit.open()
        for records in segments:
            assert await buffer.outbox.submit(None, records)
        relay = Relay(buffer, KafkaConfig(bootstrap_servers=kafka_bootstrap), audit)
        relay.start()
        try:
            for _ in range(300):
                if relay.published == 120:
                    break
                await asyncio.sleep(0.1)
            assert relay.published == 120
            assert not await buffer.outbox.fetch()  # acknowledged, so forgotten
        finally:
            await relay.stop()
            await buffer.close()
            await audit.close()

    asyncio.run(run())
    records = consume(kafka_bootstrap, topic, expect=120)
    assert len(records) == 120
    partitioner = DefaultPartitioner()
    every = list(range(PARTITIONS))
    assert len({r.partition for r in records}) > 1  # the keys spread
    for r in records:
        assert r.key is not None
        assert r.partition == partitioner(r.key, every, every)
        assert dict(r.headers)["event-id"] == b"id-" + r.value.split(b"|")[0]
    for key in keys:
        mine = sorted((r for r in records if r.key == key), key=lambda r: r.offset)
        seq = [int(r.value.split(b"|")[0]) for r in mine]
        assert seq == sorted(seq)
        assert len(seq) == len(set(seq))
