"""The relay: moves committed buffer segments onto Kafka, in commit order, then forgets them.

``gateway run`` runs it as a process of its own beside the HTTP workers (``gateway
relay``), so Kafka's client work never competes with requests for the GIL; embedded
apps (and tests) can run it in-process. Only the holder of the buffer's lease publishes,
so segments leave in commit order (and so in order per record key) whoever runs it; if
the holder dies, its lease expires and another relay takes over. A segment is deleted
only after Kafka acknowledged all of it (``acks=all``); a crash in between publishes it
again with the same event ids, never loses it.

The relay writes its view of Kafka into the buffer every second; workers read it for
``/readyz`` (``RelayMonitor``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from typing import Any

import structlog
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from gateway.audit import AuditLog
from gateway.buffer import Buffer, Record, RelayStatus, Segment
from gateway.config import KafkaConfig, LoadedConfig
from gateway.kafka import make_producer
from gateway.metrics import METRICS
from gateway.tasks import cancel

log = structlog.get_logger(__name__)

FETCH_SEGMENTS = 16
LEASE_TTL = 5.0
PROBE_EVERY = 5.0
STATUS_EVERY = 1.0
STALE_AFTER = 10.0
START_TIMEOUT = 5.0  # below STALE_AFTER: the status keeps being written while connecting


class _Batch:
    """Records bound for one partition, sent with one ``send_batch``."""

    def __init__(self, builder: Any) -> None:
        self.builder = builder
        self.future: asyncio.Future[Any] | None = None  # set once sent


class _Batches:
    """Records grouped into one batch per partition, in order, partitioned the way the
    producer's ``send`` would (murmur2 of the key), and sent when full: per record
    this is one append, where ``send`` costs a future and a trip through the
    accumulator."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self.open: dict[tuple[str, int], _Batch] = {}
        self.partitions: dict[tuple[str, bytes], int] = {}

    async def partition(self, topic: str, key: bytes) -> int:
        found = self.partitions.get((topic, key))
        if found is None:
            every = sorted(await self.producer.partitions_for(topic))
            found = self.partitions[(topic, key)] = _PARTITIONER(key, every, every)
        return found

    async def add(self, record: Record) -> _Batch:
        where = (record.topic, await self.partition(record.topic, record.key))
        for _ in range(2):
            batch = self.open.get(where)
            if batch is None:
                batch = self.open[where] = _Batch(self.producer.create_batch())
            if batch.builder.append(key=record.key, value=record.value, timestamp=None,
                                    headers=record.headers()) is not None:
                return batch
            await self._send(where)  # full: off it goes, and a fresh one takes the record
        raise AssertionError("an empty batch always takes a record")

    async def _send(self, where: tuple[str, int]) -> None:
        batch = self.open.pop(where)
        batch.builder.close()
        batch.future = await self.producer.send_batch(batch.builder, where[0],
                                                      partition=where[1])

    async def flush(self) -> None:
        for where in list(self.open):
            await self._send(where)


_PARTITIONER = DefaultPartitioner()


class Relay:
    def __init__(self, buffer: Buffer, kafka: KafkaConfig, audit: AuditLog) -> None:
        self.buffer = buffer
        self.kafka = kafka
        self.audit = audit
        self.owner = uuid.uuid4().hex
        self.kafka_ok = False
        self.kafka_error: str | None = "not connected yet"
        self.leader = False
        self.published = 0
        self._producer: Any = None
        self._partial: dict[int, int] = {}  # segment id -> records already acknowledged
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="relay")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        await self._close_producer()
        if self.leader:
            with contextlib.suppress(Exception):
                await self.buffer.release_lease(self.owner)

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 10)

    def _down(self, reason: str) -> None:
        if self.kafka_ok or self.kafka_error != reason:
            log.warning("kafka_unavailable", reason=reason)
        self.kafka_ok = False
        self.kafka_error = reason

    def _up(self) -> None:
        if not self.kafka_ok:
            log.info("kafka_available")
        self.kafka_ok = True
        self.kafka_error = None

    async def _run(self) -> None:
        backoff = 0.2
        lease_at = 0.0
        status_at = 0.0
        probe_at = time.monotonic() + PROBE_EVERY
        while True:
            if time.monotonic() - status_at >= STATUS_EVERY:
                status_at = time.monotonic()
                with contextlib.suppress(Exception):
                    await self.buffer.write_status(RelayStatus(
                        self.kafka_ok, self.kafka_error, self.published, time.time()))
            if self._producer is None:
                # Owned before start(), so that stop() closes it even mid-connect.
                self._producer = make_producer(self.kafka)
                try:
                    # Bounded: an idempotent producer that caught the broker mid-restart
                    # (empty metadata) waits for a producer id forever; a fresh one recovers.
                    await asyncio.wait_for(self._producer.start(), START_TIMEOUT)
                except (KafkaError, OSError, TimeoutError) as exc:
                    await self._close_producer()
                    self._down(f"cannot connect: {type(exc).__name__}")
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                self._up()
            now = time.monotonic()
            if now - lease_at >= 1.0:
                try:
                    self.leader = await self.buffer.acquire_lease(self.owner, LEASE_TTL)
                except Exception as exc:  # the disk refused; keep trying
                    log.error("lease_failed", error=type(exc).__name__)
                    self.leader = False
                lease_at = now
            if not self.leader:
                await asyncio.sleep(0.5)
                continue
            self.buffer.wake.clear()
            segments = await self.buffer.fetch(FETCH_SEGMENTS)
            if not segments:
                if time.monotonic() >= probe_at:
                    await self._probe()
                    probe_at = time.monotonic() + PROBE_EVERY
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.buffer.wake.wait(), 0.1)
                continue
            if await self._publish(segments):
                backoff = 0.2
                probe_at = time.monotonic() + PROBE_EVERY
            else:
                # A fresh producer after a failure: its idempotence state starts clean.
                await self._close_producer()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _probe(self) -> None:
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), 5)
        except (KafkaError, OSError, TimeoutError) as exc:
            self._down(f"metadata request failed: {type(exc).__name__}")
        else:
            self._up()

    async def _publish(self, segments: list[Segment]) -> bool:
        """Send ``segments`` in order; forget those Kafka fully acknowledged.

        True when everything went. On a failure, the acknowledged prefix of the segment it
        hit is remembered, so the retry resends only the rest of it.
        """
        sent: list[tuple[int, Any]] = []  # per record, in order: (segment index, its batch)
        error: str | None = None
        try:
            batches = _Batches(self._producer)
            for index, segment in enumerate(segments):
                for r in segment.records[self._partial.get(segment.id, 0):]:
                    sent.append((index, await batches.add(r)))
            await batches.flush()
        except KafkaError as exc:
            error = type(exc).__name__
        unsent = next((i for i, (_, batch) in enumerate(sent) if batch.future is None), None)
        sent = [(index, batch.future) for index, batch in sent[:unsent]]  # an acked prefix
        futures = list(dict.fromkeys(future for _, future in sent))
        outcomes = dict(zip(futures, await asyncio.gather(*futures, return_exceptions=True),
                            strict=True))
        results = [outcomes[future] for _, future in sent]

        acked = [self._partial.get(s.id, 0) for s in segments]
        published: dict[str, list[str]] = defaultdict(list)
        for (index, _), res in zip(sent, results, strict=True):
            if isinstance(res, BaseException):
                error = error or type(res).__name__
                break
            record = segments[index].records[acked[index]]
            acked[index] += 1
            published[record.connector_id].append(record.event_id)
        complete = 0
        while complete < len(segments) and acked[complete] == segments[complete].events:
            complete += 1
        if complete < len(segments) and acked[complete]:
            self._partial[segments[complete].id] = acked[complete]
        if complete:
            await self.buffer.ack(segments[:complete])
            for segment in segments[:complete]:
                self._partial.pop(segment.id, None)
        n = sum(len(ids) for ids in published.values())
        if n:
            self.published += n
            METRICS.published += n
            for connector_id, ids in published.items():
                self.audit.record("published", connector_id=connector_id, event_ids=ids)
            self._up()
        if error is not None:
            self._down(f"publish failed: {error}")
            return False
        return True


class RelayMonitor:
    """A worker's view of a relay running in another process, read from the buffer."""

    def __init__(self, buffer: Buffer) -> None:
        self.buffer = buffer
        self.kafka_ok = False
        self.kafka_error: str | None = "relay status not read yet"
        self.published = 0
        self.leader = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="relay-monitor")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                status = await self.buffer.read_status()
            except Exception as exc:
                self.kafka_ok, self.kafka_error = False, f"status unreadable: {type(exc).__name__}"
            else:
                if time.time() - status.updated > STALE_AFTER:
                    self.kafka_ok, self.kafka_error = False, "the relay is not running"
                else:
                    self.kafka_ok, self.kafka_error = status.kafka_ok, status.error
                self.published = status.published
            await asyncio.sleep(0.5)


async def serve(loaded: LoadedConfig, stop: asyncio.Event, *, pollers: bool) -> None:
    """The relay (and, with ``pollers``, the polling connectors) until ``stop`` is set:
    ``gateway relay`` / ``gateway poll``."""
    from gateway.polling import PollRunner

    settings = loaded.settings
    buffer = Buffer(settings.data_path / "buffer.db", settings.buffer)
    audit = AuditLog(settings.audit_path)
    await buffer.open()
    await audit.open()
    relay = Relay(buffer, settings.kafka, audit)
    relay.start()
    runner = PollRunner(settings, loaded.connectors if pollers else {}, buffer, audit)
    runner.start()
    log.info("relay_started", data_dir=settings.data_dir, pollers=sorted(runner.pollers))
    try:
        await stop.wait()
    finally:
        await runner.stop()
        await relay.stop()
        await buffer.close()
        await audit.close()
        log.info("relay_stopped")
