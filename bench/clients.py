"""The relay's Kafka client, side by side (issue 18, item 3): what publishing costs with
aiokafka (in use: batches built in Python, ``create_batch``/``send_batch``, as
``gateway.publish`` does) and with confluent-kafka (librdkafka: batches built and sent
by C threads), for the same records, against one broker.

    .venv/bin/python -m bench.clients [--records 100000] [--rounds 3] [--size 1300]

Both with acks=all, idempotence and linger 5 ms; records of ``--size`` bytes with the
gateway's five headers and a key, in chunks of 2000 (a relay fetch). Per run: records per
second until Kafka acknowledged the last one, and the CPU microseconds per record of this
process (every thread: librdkafka's are counted). confluent-kafka is not a dependency of
the gateway; the script skips it when it is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import uvloop

from devtools.localkafka import LocalKafka

CHUNK = 2000
Record = tuple[bytes, bytes, list[tuple[str, bytes]]]


def records(n: int, size: int) -> list[Record]:
    value = b'{"data":"' + b"x" * max(0, size - 11) + b'"}'
    out = []
    for i in range(n):
        eid = str(uuid.uuid4()).encode()
        out.append((b"bench-%d" % (i % 64), value,
                    [("content-type", b"application/json"), ("event-id", eid),
                     ("event-type", b"bench.event"), ("event-source", b"bench"),
                     ("connector-id", b"bench")]))
    return out


async def with_aiokafka(bootstrap: str, topic: str, recs: list[Record]) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import murmur2

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=5,
                                max_batch_size=256 * 1024)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        for at in range(0, len(recs), CHUNK):
            chains: dict[int, list[Any]] = {}
            for key, value, headers in recs[at:at + CHUNK]:
                # murmur2 as the default partitioner; gateway.publish caches it per key
                p = partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
                chain = chains.setdefault(p, [])
                if not chain or chain[-1].append(key=key, value=value, timestamp=None,
                                                 headers=headers) is None:
                    chain.append(producer.create_batch())
                    chain[-1].append(key=key, value=value, timestamp=None,
                                     headers=headers)

            async def send(p: int, chain: list[Any]) -> None:
                for builder in chain:  # one partition's batches in order, as the relay
                    builder.close()
                    await (await producer.send_batch(builder, topic, partition=p))

            await asyncio.gather(*(send(p, c) for p, c in chains.items()))
    finally:
        await producer.stop()


class _Countdown:
    """Resolves its future once ``left`` deliveries have been acknowledged."""

    def __init__(self, future: asyncio.Future[None], left: int) -> None:
        self.future, self.left = future, left

    def delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            raise RuntimeError(str(err))
        self.left -= 1
        if self.left == 0:
            self.future.set_result(None)


async def with_confluent(bootstrap: str, topic: str, recs: list[Record]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5,
                         "batch.size": 256 * 1024})
    loop = asyncio.get_running_loop()
    try:
        for at in range(0, len(recs), CHUNK):
            chunk = recs[at:at + CHUNK]
            done = _Countdown(loop.create_future(), len(chunk))
            for key, value, headers in chunk:
                producer.produce(topic, value, key, headers=list(headers),
                                 on_delivery=done.delivered)
            while not done.future.done():  # callbacks run in poll(), on this thread
                producer.poll(0)
                if not done.future.done():
                    await asyncio.sleep(0.001)
    finally:
        await loop.run_in_executor(None, producer.flush, 30)


def measure(name: str, fn: Callable[..., Any], bootstrap: str, recs: list[Record]
            ) -> tuple[float, float]:
    topic = f"bench.clients.{name}.{int(time.time() * 1000)}"
    uvloop.run(fn(bootstrap, topic, recs[:CHUNK]))  # connect, create the topic, warm up
    cpu0, t0 = time.process_time(), time.perf_counter()
    uvloop.run(fn(bootstrap, topic, recs))
    cpu, secs = time.process_time() - cpu0, time.perf_counter() - t0
    rate, us = len(recs) / secs, cpu / len(recs) * 1e6
    print(f"{name:<10} {rate:>9.0f} records/s  CPU {us:6.1f} µs/record", flush=True)
    return rate, us


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=1300)
    args = parser.parse_args()
    clients: dict[str, Callable[..., Any]] = {"aiokafka": with_aiokafka}
    try:
        import confluent_kafka  # noqa: F401
        clients["confluent"] = with_confluent
    except ImportError:
        print("# confluent-kafka is not installed: aiokafka only", file=sys.stderr)
    recs = records(args.records, args.size)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    kafka = None if bootstrap else LocalKafka()
    if kafka is not None:
        bootstrap = kafka.start()
    assert bootstrap is not None
    results: dict[str, list[tuple[float, float]]] = {n: [] for n in clients}
    try:
        for _ in range(args.rounds):
            for name, fn in clients.items():
                results[name].append(measure(name, fn, bootstrap, recs))
    finally:
        if kafka is not None:
            kafka.close()
    for name, runs in results.items():
        print(f"== {name}: median {statistics.median(r for r, _ in runs):.0f} records/s,"
              f" {statistics.median(u for _, u in runs):.1f} µs CPU per record")
    return 0


if __name__ == "__main__":
    sys.exit(main())
