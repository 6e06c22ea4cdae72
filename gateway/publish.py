"""One round of publishing: buffered records onto Kafka, sorted by what Kafka answered.

Records are grouped into batches per partition (murmur2 of the key, as the producer's
``send`` would), and each partition's batches are sent one after the other, the next
only once Kafka acknowledged the last: a failure stops that partition, so order per key
holds, while the other partitions go on. What Kafka answered decides each record's fate:

- acknowledged: done, and never sent again (the relay forgets a segment once every one
  of its records is done);
- refused for good, for this record (``REFUSALS``: too large, invalid topic, not
  authorized, a topic still unknown after ``kafka.unknown_topic_timeout_seconds``): the
  records of the refused batch are tried one by one (a batch refused as too large may
  hold a single culprit); a record refused alone goes to the dead-letter topic with the
  reason, and if that is refused too, into the buffer's quarantine. Either way it is done
  and no longer blocks the records behind it;
- anything else (aiokafka's ``retriable`` errors, time-outs, a broker that went away):
  left for the next round, which the relay starts after a backoff.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka.errors import (
    CorruptRecordException,
    InvalidRequestError,
    InvalidTimestampError,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
    UnsupportedForMessageFormatError,
)
from aiokafka.partitioner import DefaultPartitioner

from gateway.buffer import Record
from gateway.buffer.codec import DEAD_LETTER, ENVELOPE, TRACE_HEADERS
from gateway.envelope import rfc3339
from gateway.kafka_settings import KafkaConfig
from gateway.schema_registry import RegistryUnavailable, SchemaRegistry, frame
from gateway.topics import topic_problem

# Kafka's answers that no retry can change for the record they were about.
REFUSALS: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError, InvalidTopicError,
    TopicAuthorizationFailedError, CorruptRecordException, InvalidTimestampError,
    UnsupportedForMessageFormatError, PolicyViolationError, InvalidRequestError)
METADATA_WAIT = 5.0  # seconds a round waits for a topic's partitions

_PARTITIONER = DefaultPartitioner()

Item = tuple[int, int, Record]  # (segment id, index in the segment, record)


def refusal(exc: BaseException) -> str | None:
    """The reason Kafka refused a record for good, or None when a retry may succeed."""
    return type(exc).__name__ if isinstance(exc, REFUSALS) else None


@dataclass
class Outcome:
    """What one round did."""

    done: list[Item] = field(default_factory=list)  # acknowledged, dead-lettered, kept aside
    published: list[Record] = field(default_factory=list)
    # where Kafka put them: (event id, topic, partition, offset)
    offsets: list[tuple[str, str, int, int]] = field(default_factory=list)
    dead_lettered: list[tuple[Record, str]] = field(default_factory=list)
    quarantined: list[tuple[Record, str]] = field(default_factory=list)
    error: str | None = None  # the first retriable failure: back off, then try again
    waiting: str | None = None  # records wait for a topic to appear (Kafka is fine)
    registry: str | None = None  # records wait for the schema registry (Kafka is fine)
    registry_used: bool = False  # records needed schema ids this round


def dead_letter(record: Record, reason: str, topic: str) -> Record:
    """The dead letter of a record Kafka refused: the whole event, and why. A CloudEvent
    comes with its format and headers (in binary mode they hold its attributes)."""
    cloudevent = record.kind not in (ENVELOPE, DEAD_LETTER)
    trace = tuple(h for h in record.extra if h[0] in TRACE_HEADERS)
    value = orjson.dumps({
        "id": record.event_id, "connector_id": record.connector_id, "source": record.source,
        "reason": f"kafka_refused: {reason}", "received_at": rfc3339(datetime.now(UTC)),
        "request_id": None, "content_type": "application/json", "topic": record.topic,
        "type": record.event_type, "event": orjson.Fragment(record.value),
        **({"format": record.kind, "headers": {n: v.decode() for n, v in record.extra}}
           if cloudevent else {})})
    return Record(topic, record.key, value, record.event_id, record.connector_id,
                  "gateway.dead_letter", record.source, DEAD_LETTER, trace)


class Publisher:
    """Publishes rounds of records with one producer; remembers which topics it could
    not find, and since when."""

    def __init__(self, producer: Any, kafka: KafkaConfig,
                 quarantine: Callable[[Record, str], Awaitable[None]],
                 registry: SchemaRegistry | None = None) -> None:
        self.producer = producer
        self.kafka = kafka
        self.quarantine = quarantine
        self.registry = registry
        self.unknown_since: dict[str, float] = {}
        self._partition: dict[tuple[str, bytes], int] = {}
        self._schema_ids: dict[tuple[str, str], int] = {}  # this round's, (topic, kind)

    async def _resolve_schemas(self, items: list[Item], out: Outcome) -> None:
        """This round's schema ids; a (topic, kind) the registry did not answer for is
        left out, and its records wait."""
        self._schema_ids = {}
        if self.registry is None:
            return
        for topic, kind in dict.fromkeys((r.topic, r.kind) for _, _, r in items
                                         if r.kind != DEAD_LETTER):
            out.registry_used = True
            try:
                self._schema_ids[(topic, kind)] = await self.registry.schema_id(topic, kind)
            except RegistryUnavailable as exc:
                out.registry = out.registry or str(exc)

    def _wire(self, record: Record) -> bytes | None:
        """The value as sent: framed for the schema registry when one is configured;
        None while its schema id is unknown (the record waits)."""
        if self.registry is None or record.kind == DEAD_LETTER:
            return record.value
        schema_id = self._schema_ids.get((record.topic, record.kind))
        return None if schema_id is None else frame(schema_id, record.value)

    async def _partitions(self, topic: str, out: Outcome) -> list[int] | str | None:
        """The topic's partitions; a refusal reason; or None: not yet, try again later."""
        if topic_problem(topic) is not None:  # a name Kafka can never take
            return str(InvalidTopicError.__name__)
        known = self.producer.client.cluster.partitions_for_topic(topic)
        if known:
            self.unknown_since.pop(topic, None)
            return sorted(int(p) for p in known)
        try:
            found = await asyncio.wait_for(self.producer.partitions_for(topic), METADATA_WAIT)
        except (KafkaError, TimeoutError) as exc:
            if reason := refusal(exc):
                return reason
            if not await self._absent(topic):  # Kafka itself is unreachable: not the topic
                out.error = out.error or f"no metadata for {topic}: {type(exc).__name__}"
                return None
            since = self.unknown_since.setdefault(topic, time.monotonic())
            if time.monotonic() - since >= self.kafka.unknown_topic_timeout_seconds:
                return str(UnknownTopicOrPartitionError.__name__)
            out.waiting = out.waiting or f"topic {topic} does not exist (yet)"
            return None
        self.unknown_since.pop(topic, None)
        return sorted(int(p) for p in found)

    async def _absent(self, topic: str) -> bool:
        """True when the cluster answers and does not know ``topic``."""
        try:
            metadata = await asyncio.wait_for(self.producer.client.fetch_all_metadata(),
                                              METADATA_WAIT)
        except (KafkaError, OSError, TimeoutError):
            return False
        return topic not in metadata.topics()

    def _partition_of(self, topic: str, key: bytes, partitions: list[int]) -> int:
        found = self._partition.get((topic, key))
        if found is None:
            found = _PARTITIONER(key, partitions, partitions)
            if len(self._partition) < 100_000:
                self._partition[(topic, key)] = found
        return found

    async def publish(self, items: list[Item]) -> Outcome:
        """Send ``items`` (in buffer order) and sort every one of them out, or leave it."""
        out = Outcome()
        topics: dict[str, list[int] | str | None] = {}
        for topic in dict.fromkeys(record.topic for _, _, record in items):
            topics[topic] = await self._partitions(topic, out)
        await self._resolve_schemas(items, out)
        chains: dict[tuple[str, int], list[tuple[list[Item], Any]]] = {}
        refused: list[tuple[Item, str]] = []
        for item in items:
            record = item[2]
            where = topics[record.topic]
            if isinstance(where, str):
                refused.append((item, where))
                continue
            value = self._wire(record)
            if where is None or value is None:
                continue  # its topic, or its schema id, is not there yet
            tp = (record.topic, self._partition_of(record.topic, record.key, where))
            chain = chains.setdefault(tp, [])
            if not chain or chain[-1][1].append(key=record.key, value=value,
                                                timestamp=None,
                                                headers=record.headers()) is None:
                builder = self.producer.create_batch()
                builder.append(key=record.key, value=value, timestamp=None,
                               headers=record.headers())  # an empty batch takes any record
                chain.append(([], builder))
            chain[-1][0].append(item)
        await asyncio.gather(*(self._send_chain(tp, chain, out)
                               for tp, chain in chains.items()))
        for item, reason in refused:
            await self._dead_letter(item, reason, out)
        return out

    async def _send(self, builder: Any, tp: tuple[str, int]) -> int:
        """Sends one batch; the offset Kafka gave its first record."""
        builder.close()
        future = await self.producer.send_batch(builder, tp[0], partition=tp[1])
        metadata = await future
        return int(getattr(metadata, "offset", -1))

    async def _send_chain(self, tp: tuple[str, int], chain: list[tuple[list[Item], Any]],
                          out: Outcome) -> None:
        """One partition's batches, each sent once the one before it was acknowledged."""
        for items, builder in chain:
            try:
                base = await self._send(builder, tp)
            except KafkaError as exc:
                if refusal(exc) is None:
                    out.error = out.error or type(exc).__name__
                    return  # this partition waits for the next round, in order
                if not await self._one_by_one(tp, items, out):
                    return
                continue
            out.done.extend(items)
            out.published.extend(item[2] for item in items)
            out.offsets.extend((item[2].event_id, tp[0], tp[1], base + i)
                               for i, item in enumerate(items))

    async def _one_by_one(self, tp: tuple[str, int], items: list[Item], out: Outcome) -> bool:
        """A refused batch's records, each alone: the refused ones are dead-lettered.
        False when a retriable failure stopped it (the rest waits, in order)."""
        for item in items:
            builder = self.producer.create_batch()
            record = item[2]
            builder.append(key=record.key, value=self._wire(record), timestamp=None,
                           headers=record.headers())
            try:
                offset = await self._send(builder, tp)
            except KafkaError as exc:
                reason = refusal(exc)
                if reason is None:
                    out.error = out.error or type(exc).__name__
                    return False
                if not await self._dead_letter(item, reason, out):
                    return False
                continue
            out.done.append(item)
            out.published.append(record)
            out.offsets.append((record.event_id, tp[0], tp[1], offset))
        return True

    async def _dead_letter(self, item: Item, reason: str, out: Outcome) -> bool:
        """``item`` onto the dead-letter topic, or into quarantine when that refuses it
        too. False when a retriable failure left it for the next round."""
        record = item[2]
        letter = dead_letter(record, reason, self.kafka.dead_letter_topic)
        where = await self._partitions(letter.topic, out)
        if where is None:
            return False  # the dead-letter topic is not there yet
        again = where if isinstance(where, str) else None
        if not isinstance(where, str):
            builder = self.producer.create_batch()
            builder.append(key=letter.key, value=letter.value, timestamp=None,
                           headers=letter.headers())
            try:
                await self._send(builder, (letter.topic, self._partition_of(
                    letter.topic, letter.key, where)))
            except KafkaError as exc:
                again = refusal(exc)
                if again is None:
                    out.error = out.error or f"dead-letter topic: {type(exc).__name__}"
                    return False
        if again is not None:
            await self.quarantine(record, f"{reason}; its dead letter: {again}")
            out.quarantined.append((record, reason))
        else:
            out.dead_lettered.append((record, reason))
        out.done.append(item)
        return True
