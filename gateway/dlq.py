"""Dead letters read back from the dead-letter topic over a time range, for a redrive
(``POST /admin/dlq/redrive`` with ``from_topic``, ``gateway dlq redrive --from-topic``):
the way back for dead letters the delivery store no longer holds (past its retention, or
written on another machine).

A dead letter keeps what normalizing it again needs: the body (its personal data
handled as in the connector's events), the request's headers (secret-bearing ones
redacted) and the delivery id (``Records.dead_letter``). Each one read becomes a stored
delivery again; those that cannot be (a record Kafka refused whole, which ``gateway
quarantine`` shows; a dead letter of a polled record) are said, with why. At most
``MAX_READ`` records are read in one call: a longer range is redriven in parts.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from gateway.deliveries import Delivery
from gateway.kafka import connection, make_admin
from gateway.kafka_settings import KafkaConfig

MAX_READ = 10_000


@dataclass
class Read:
    deliveries: list[Delivery] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    records: int = 0
    truncated: bool = False


def to_delivery(letter: Any, handled: Callable[[str], bool]) -> Delivery | str:
    """A dead letter (its value, decoded) as a stored delivery, or why it cannot be one."""
    try:
        if not isinstance(letter, dict) or not isinstance(letter.get("connector_id"), str):
            return "not a dead letter"
        if "event" in letter:
            return "an event Kafka refused whole: see gateway quarantine"
        if letter.get("body_base64") is not None:
            body = base64.b64decode(letter["body_base64"])
        elif letter.get("body") is not None:
            body = str(letter["body"]).encode()
        else:
            return "no body kept"
        headers = {str(k): str(v) for k, v in (letter.get("headers") or {}).items()}
        if letter.get("content_type") and "content-type" not in headers:
            headers["content-type"] = str(letter["content_type"])
        at = datetime.fromisoformat(str(letter["received_at"])).timestamp()
    except (ValueError, TypeError, KeyError) as exc:
        return f"unreadable dead letter ({type(exc).__name__})"
    cid = letter["connector_id"]
    return Delivery(str(letter.get("request_id") or letter.get("id")), "dead_lettered", at,
                    cid, str(letter.get("reason")), [str(letter.get("id"))], "POST", None,
                    headers, body, handled(cid))


async def read_dead_letters(cfg: KafkaConfig, since: float, until: float | None,
                            connector_id: str | None,
                            handled: Callable[[str], bool]) -> Read:
    """The dead letters written to ``kafka.dead_letter_topic`` from ``since`` to ``until``
    (epoch seconds, by the records' timestamps), of one connector or all; ``handled``:
    whether a connector's dead letters had their personal data handled."""
    out, topic = Read(), cfg.dead_letter_topic
    admin = make_admin(cfg)
    await admin.start()
    try:  # every topic, not this one by name: naming it may make the broker create it
        described = await admin.describe_topics()
    finally:
        await admin.close()
    tps = [TopicPartition(topic, int(p["partition"])) for d in described
           if d["topic"] == topic and d.get("error_code", 0) == 0 for p in d["partitions"]]
    if not tps:
        return out  # nothing was ever dead-lettered
    consumer = AIOKafkaConsumer(**connection(cfg), enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        consumer.assign(tps)
        starts = await consumer.offsets_for_times({tp: int(since * 1000) for tp in tps})
        ends = await consumer.end_offsets(tps)
        left = set()
        for tp in tps:
            found = starts.get(tp)
            if found is not None and found.offset < ends[tp]:
                consumer.seek(tp, found.offset)
                left.add(tp)
        while left and not out.truncated:
            batches = await consumer.getmany(*left, timeout_ms=1000, max_records=500)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp] or (
                            until is not None and record.timestamp >= until * 1000):
                        left.discard(tp)
                        break
                    out.records += 1
                    _take(out, record.value or b"", connector_id, handled)
                    if out.records >= MAX_READ:
                        out.truncated = True
                        break
                if tp in left and await consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
    finally:
        await consumer.stop()
    return out


def _take(out: Read, value: bytes, connector_id: str | None,
          handled: Callable[[str], bool]) -> None:
    try:
        letter = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        if connector_id is None:
            out.skipped.append({"request_id": "",
                                "reason": f"unreadable dead letter ({type(exc).__name__})"})
        return
    cid = letter.get("connector_id") if isinstance(letter, dict) else None
    if connector_id is not None and cid != connector_id:
        return
    found = to_delivery(letter, handled)
    if isinstance(found, str):
        rid = str(letter.get("request_id") or "") if isinstance(letter, dict) else ""
        out.skipped.append({"request_id": rid, "reason": found})
    else:
        out.deliveries.append(found)
