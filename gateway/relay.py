"""The relay: moves committed buffer segments onto Kafka, in commit order, then forgets them.

``gateway run`` runs it as a process of its own beside the HTTP workers (``gateway
relay``), so Kafka's client work never competes with requests for the GIL; embedded
apps (and tests) can run it in-process. Only the holder of the buffer's lease publishes,
so segments leave in commit order (and so in order per record key) whoever runs it; if
the holder dies, its lease expires and another relay takes over. A segment is deleted
only once every one of its records is done: acknowledged by Kafka (``acks=all``), or
refused for good and dead-lettered (``gateway.publish``); a record Kafka acknowledged
is never sent again by this relay, and a crash in between publishes it again with the
same event id, never loses it.

Two tasks, each restarted if it fails (``gateway.tasks.supervised``): the publishing
loop, and a heartbeat that renews the lease and writes the relay's view of Kafka into
the buffer every second, however long a publish takes; workers read it for ``/readyz``
(``RelayMonitor``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import structlog
from aiokafka.errors import KafkaError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_never, wait_exponential

from gateway.audit import AuditLog
from gateway.buffer import Buffer, RelayStatus, Segment
from gateway.config import LoadedConfig
from gateway.deliveries import DeliveryStore
from gateway.kafka import describe, explain, make_admin, make_producer, refuses_us
from gateway.kafka_settings import KafkaConfig
from gateway.metrics import METRICS, MetricsSync
from gateway.publish import Outcome, Publisher
from gateway.schema_registry import SchemaRegistry
from gateway.tasks import cancel, supervised
from gateway.telemetry import Telemetry
from gateway.topics import check_topics

log = structlog.get_logger(__name__)

FETCH_SEGMENTS = 16
LEASE_TTL = 5.0
PROBE_EVERY = 5.0
STATUS_EVERY = 1.0
STALE_AFTER = 10.0  # a status older than this: the relay is not running
START_TIMEOUT = 5.0
FIRST_BACKOFF = 0.2  # seconds after a failed connect or publish, doubling ...
MAX_BACKOFF = 5.0  # ... up to this, until a publish goes through
_BACKOFF = wait_exponential(multiplier=FIRST_BACKOFF, max=MAX_BACKOFF)


class _Stalled(Exception):
    """Kafka could not be reached, or a publish did not go through: back off."""


class Relay:
    def __init__(self, buffer: Buffer, kafka: KafkaConfig, audit: AuditLog,
                 fixed_topics: Iterable[str] = (), telemetry: Telemetry | None = None,
                 deliveries: DeliveryStore | None = None) -> None:
        self.buffer = buffer
        self.deliveries = deliveries  # where each published event landed (its offset)
        self.telemetry = telemetry
        self.registry = (SchemaRegistry(kafka.schema_registry)
                         if kafka.schema_registry is not None else None)
        self._registry_error: str | None = None
        self.kafka = kafka
        self.audit = audit
        self.fixed_topics = sorted(set(fixed_topics))
        self.owner = uuid.uuid4().hex
        self.kafka_ok = False
        self.kafka_error: str | None = "not connected yet"
        self.kafka_refused = False  # the cluster refuses our credentials or certificates
        self.leader = False
        self.published = 0
        self.missing_topics: list[str] | None = None  # None: not checked yet
        self._producer: Any = None
        self._publisher: Publisher | None = None
        self._done: dict[int, set[int]] = {}  # segment id -> indexes of records done
        self._waiting: str | None = None
        self._sending_since: float | None = None  # time.monotonic() of the publish in flight
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [supervised("relay", self._run),
                       supervised("relay-heartbeat", self._heartbeat)]

    async def stop(self) -> None:
        for task in self._tasks:
            await cancel(task)
        self._tasks = []
        await self._close_producer()
        if self.registry is not None:
            await self.registry.aclose()
        if self.leader:
            with contextlib.suppress(Exception):
                await self.buffer.lease.release(self.owner)

    async def _close_producer(self) -> None:
        producer, self._producer, self._publisher = self._producer, None, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 10)

    def _down(self, reason: str, *, refused: bool = False) -> None:
        if self.kafka_ok or self.kafka_error != reason:
            log.warning("kafka_unavailable", reason=reason, refused=refused)
        self.kafka_ok = False
        self.kafka_error = reason
        self.kafka_refused = refused

    def _up(self) -> None:
        if not self.kafka_ok:
            log.info("kafka_available")
        self.kafka_ok = True
        self.kafka_error = None
        self.kafka_refused = False

    def _check_acknowledgements(self) -> None:
        """A publish waiting longer than the producer's request timeout means Kafka is
        not answering (a hung or overloaded broker), whatever the client still retries:
        say so now rather than when the client gives up."""
        since, limit = self._sending_since, self.kafka.request_timeout_ms / 1000
        if since is not None and time.monotonic() - since > limit:
            self._down(f"no acknowledgement from Kafka for more than {limit:.0f} s")

    async def _heartbeat(self) -> None:
        """The lease and the status, every second, whatever the publishing loop does."""
        while True:
            self._check_acknowledgements()
            try:
                self.leader = await self.buffer.lease.acquire(self.owner, LEASE_TTL)
            except Exception:
                self.leader = False
                raise
            await self.buffer.status.write_relay(RelayStatus(
                self.kafka_ok, self.kafka_error, self.published, time.time(),
                self.leader, refused=self.kafka_refused))
            await asyncio.sleep(STATUS_EVERY)

    async def _connect(self) -> bool:
        # Owned before start(), so that stop() closes it even mid-connect.
        self._producer = make_producer(self.kafka)
        try:
            # Bounded: an idempotent producer that caught the broker mid-restart (empty
            # metadata) waits for a producer id forever; a fresh one recovers.
            await asyncio.wait_for(self._producer.start(), START_TIMEOUT)
        except (KafkaError, OSError, TimeoutError) as exc:
            await self._close_producer()
            reason, refused = await explain(self.kafka, exc)
            self._down(f"cannot connect: {reason}", refused=refused)
            return False
        self._publisher = Publisher(self._producer, self.kafka, self.buffer.outbox.quarantine,
                                    self.registry)
        self._up()
        if self.missing_topics is None:
            await self._check_topics()
        return True

    async def _check_topics(self) -> None:
        """Say which fixed topics the cluster lacks (once, at the first connection)."""
        try:
            found = await check_topics(self._producer.client, self.fixed_topics,
                                       lambda: make_admin(self.kafka))
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("topic_check_failed", error=type(exc).__name__)
            return
        self.missing_topics = found.missing
        if found.missing:
            log.warning("topics_missing", topics=found.missing,
                        broker_auto_creates=found.auto_create,
                        detail="events for these topics wait, then go to the dead-letter"
                        " topic" if found.auto_create is False else
                        "the broker creates them on first use")

    async def _run(self) -> None:
        """Publish forever. A failed connect or publish is retried after a backoff
        (tenacity: ``FIRST_BACKOFF`` doubling up to ``MAX_BACKOFF``) that starts over once
        a publish went through; the healthy loop never enters tenacity."""
        self._probe_at = time.monotonic() + PROBE_EVERY
        while True:
            retrying = AsyncRetrying(retry=retry_if_exception_type(_Stalled), stop=stop_never,
                                     wait=_BACKOFF, reraise=True)
            async for attempt in retrying:
                with attempt:
                    await self._publishing(recovering=attempt.retry_state.attempt_number > 1)

    async def _publishing(self, *, recovering: bool) -> None:
        """Publish what the buffer holds until a connect or a publish fails (``_Stalled``)
        or, when ``recovering`` from failures, until a publish went through."""
        while True:
            if self._producer is None and not await self._connect():
                raise _Stalled
            if not self.leader:
                await asyncio.sleep(0.5)
                continue
            self.buffer.outbox.wake.clear()
            segments = await self.buffer.outbox.fetch(FETCH_SEGMENTS)
            if not segments:
                await self._idle()
                continue
            if not await self._publish(segments):
                raise _Stalled
            self._probe_at = time.monotonic() + PROBE_EVERY
            if recovering:
                return

    async def _idle(self) -> None:
        """Nothing to publish: probe Kafka and purge expired records now and then, and
        wait a moment for new segments."""
        if time.monotonic() >= self._probe_at:
            await self._probe()
            await self.buffer.outbox.purge_expired()
            self._probe_at = time.monotonic() + PROBE_EVERY
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.buffer.outbox.wake.wait(), 0.1)

    async def _probe(self) -> None:
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), 5)
        except (KafkaError, OSError, TimeoutError) as exc:
            self._down(f"metadata request failed: {describe(exc)}", refused=refuses_us(exc))
        else:
            self._up()

    async def _publish(self, segments: list[Segment]) -> bool:
        """Send what is not done yet of ``segments``; forget the segments now complete.
        True when nothing failed (records waiting for their topic included)."""
        assert self._publisher is not None
        items = [(s.id, i, r) for s in segments
                 for i, r in enumerate(s.records) if i not in self._done.get(s.id, ())]
        self._sending_since = time.monotonic()
        began = time.time_ns()
        try:
            out = await self._publisher.publish(items)
        finally:
            self._sending_since = None
        if self.telemetry is not None and out.published:
            self.telemetry.published(out.published, began)
        for sid, index, _ in out.done:
            self._done.setdefault(sid, set()).add(index)
        complete = [s for s in segments if len(self._done.get(s.id, ())) >= s.events]
        if complete:
            await self.buffer.outbox.ack(complete)
            for segment in complete:
                self._done.pop(segment.id, None)
        self._report(out)
        if out.error is not None:
            self._down(f"publish failed: {out.error}")
            # A fresh producer after a failure: its idempotence state starts clean.
            await self._close_producer()
            return False
        self._up()
        if out.registry_used and out.registry != self._registry_error:
            if out.registry is not None:
                log.warning("schema_registry_unavailable", detail=out.registry)
            else:
                log.info("schema_registry_available")
            self._registry_error = out.registry
        if out.registry is not None:
            return False  # back off: its records wait, in order
        if out.waiting is not None:
            if out.waiting != self._waiting:
                log.warning("topic_waiting", detail=out.waiting,
                            dead_letter_after=self.kafka.unknown_topic_timeout_seconds)
            self._waiting = out.waiting
            return False  # back off: the records behind it went, these wait
        self._waiting = None
        return True

    def _report(self, out: Outcome) -> None:
        published: dict[str, list[str]] = defaultdict(list)
        for record in out.published:
            published[record.connector_id].append(record.event_id)
        if out.published:
            self.published += len(out.published)
            METRICS.published += len(out.published)
        for connector_id, ids in published.items():
            self.audit.record("published", connector_id=connector_id, event_ids=ids)
        if self.deliveries is not None:
            for event_id, topic, partition, offset in out.offsets:
                self.deliveries.published(event_id, topic, partition, offset)
        for record, reason in out.dead_lettered:
            log.warning("kafka_refused", connector_id=record.connector_id,
                        event_id=record.event_id, topic=record.topic, reason=reason)
            self.audit.record("dead_lettered", connector_id=record.connector_id,
                              reason="kafka_refused", event_ids=[record.event_id])
        for record, reason in out.quarantined:
            log.error("quarantined", connector_id=record.connector_id,
                      event_id=record.event_id, topic=record.topic, reason=reason)
            self.audit.record("failed", connector_id=record.connector_id,
                              reason="quarantined", event_ids=[record.event_id])


class RelayMonitor:
    """A worker's view of a relay running in another process, read from the buffer."""

    def __init__(self, buffer: Buffer) -> None:
        self.buffer = buffer
        self.kafka_ok = False
        self.kafka_error: str | None = "relay status not read yet"
        self.kafka_refused = False
        self.published = 0
        self.leader = False
        self.missing_topics: list[str] | None = None  # the relay process logs them
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = supervised("relay-monitor", self._run)

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                status = await self.buffer.status.read_relay()
            except Exception as exc:
                self.kafka_ok, self.kafka_error = False, f"status unreadable: {type(exc).__name__}"
            else:
                if time.time() - status.updated > STALE_AFTER:
                    self.kafka_ok, self.kafka_error = False, "the relay is not running"
                    self.leader = False
                else:
                    self.kafka_ok, self.kafka_error = status.kafka_ok, status.error
                    self.kafka_refused = status.refused
                    self.leader = status.leader
                self.published = status.published
            await asyncio.sleep(0.5)


async def serve(loaded: LoadedConfig, stop: asyncio.Event, *, pollers: bool) -> None:
    """The relay (and, with ``pollers``, the polling connectors) until ``stop`` is set:
    ``gateway relay`` / ``gateway poll``."""
    from gateway.admin import AdminParts, AdminServer, Controls, create_admin
    from gateway.certification import Certifier
    from gateway.pipeline import Pipeline
    from gateway.polling import PollRunner
    from gateway.reloading import Reloader
    from gateway.shared import Shared

    settings = loaded.settings
    buffer = Buffer(settings.data_path / "buffer.db", settings.buffer)
    audit = AuditLog.from_config(settings.audit_path, settings.audit,
                                 loaded.audit_retention())
    await buffer.open()
    await audit.open()
    telemetry = Telemetry.from_config(settings.telemetry, "relay")
    deliveries = loaded.delivery_store()
    await deliveries.open()
    relay = Relay(buffer, settings.kafka, audit, loaded.fixed_topics(), telemetry,
                  deliveries)
    relay.start()
    shared = Shared.from_config(settings.redis, settings.buffer.dedup_window_seconds)
    if shared is not None:
        shared.start()
    runner = PollRunner(settings, loaded.connectors if pollers else {}, buffer, audit,
                        loaded.policies, loaded.acls, loaded.write_back, runs_pollers=pollers,
                        shared=shared)
    runner.start()
    sync = MetricsSync(METRICS, buffer, role="relay")  # pollers' counts: /metrics, SLOs
    sync.start()
    certifier = Certifier(loaded, buffer, runner, lambda: relay.leader)
    certifier.start()

    pipeline = Pipeline(settings, loaded.connectors, buffer, audit, telemetry,
                        loaded.policies, loaded.acls, deliveries, shared)  # replays, from the admin
    controls = Controls(settings.data_path)
    pipeline.paused = controls.paused

    async def swap(_: LoadedConfig, changed: dict[str, Any], removed: list[str]) -> None:
        pipeline.swap(changed, loaded.acls, loaded.policies, removed)
        await runner.swap(changed, removed, loaded.acls, loaded.policies)

    reloader = Reloader(loaded, swap, controls.reload_requested_at)  # secrets, admin reloads
    reloading = supervised("credential-reload", reloader.run) if reloader.watching else None
    admin = None
    if settings.admin.token is not None:
        admin = AdminServer(settings.admin, create_admin(AdminParts(
            settings.admin.token.get_secret_value(), loaded, deliveries, pipeline, controls,
            relay, reloader.reload)))
        await admin.start()
    log.info("relay_started", data_dir=settings.data_dir, pollers=sorted(runner.pollers))
    try:
        await stop.wait()
    finally:
        if admin is not None:
            await admin.stop()
        await cancel(reloading)
        await certifier.stop()
        await sync.stop()
        await runner.stop()
        if shared is not None:
            await shared.stop()
        await relay.stop()
        await deliveries.close()
        await buffer.close()
        await audit.close()
        if telemetry is not None:
            await asyncio.to_thread(telemetry.close)
        log.info("relay_stopped")
