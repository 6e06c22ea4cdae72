"""Kafka records from envelope fields, for every way events come in (webhooks,
/api/events, pollers), and the dead-letter record of what cannot become an envelope."""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import orjson
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from connectors.base import Connector
from gateway.acl import Acl, OutsideAcl
from gateway.buffer import Record
from gateway.buffer.codec import CLOUDEVENTS_BINARY, DEAD_LETTER, ENVELOPE, Headers
from gateway.envelope import encode_envelope, rfc3339, topic_for
from gateway.errors import PayloadTooLarge, Unnormalizable
from gateway.formats import cloudevent_binary, cloudevent_structured
from gateway.governance import Policy, SchemaViolation
from gateway.kafka_settings import Format, KafkaConfig
from gateway.metrics import METRICS

MAX_EVENT_TYPE = 256  # characters; a longer type is dead-lettered (400 on /api/events)

# Header names whose values prove or carry a secret: never kept in a dead letter
_SECRET_HEADER = re.compile(
    r"authori[sz]ation|cookie|signature|\bsig\b|token|secret|passw|hmac|api-?key|"
    r"(^|-)key$|(^|-)mac$|sas-key|verification|passcode|credential|^x-trello-webhook$",
    re.IGNORECASE)
REDACTED = "[redacted]"


@functools.lru_cache(maxsize=4096)
def _secret(name: str) -> bool:
    return _SECRET_HEADER.search(name) is not None


def secret_headers(connector: Connector[Any]) -> set[str]:
    """Headers its configuration names as secret-bearing (an ingress API key's), in
    lower case: ``redacted``'s ``also``."""
    key = connector.config.api_key
    return {key.header.lower()} if key is not None and key.header else set()


def redacted(headers: Mapping[str, str], also: Collection[str] = ()) -> dict[str, str]:
    """A request's headers fit to keep: the values of secret-bearing ones replaced (and of
    ``also``: lower-case names a connector was configured to read a secret from). Header
    names repeat from request to request: each is judged once."""
    return {name: REDACTED if (len(name) <= 100 and _secret(name)) or name in also
            or (len(name) > 100 and _SECRET_HEADER.search(name)) else value
            for name, value in headers.items()}


class Records:
    """Kafka records from envelope fields, for every way events come in (webhooks,
    /api/events, pollers): the topic is the connector's or the template's, the value
    and headers in that topic's ``kafka.format`` (both cached per connector, source and
    type), the trace context's headers added.
    A record the broker would refuse as too large raises PayloadTooLarge (413); an event
    type longer than ``MAX_EVENT_TYPE`` raises Unnormalizable (dead letter), an event
    outside its connector's ACL OutsideAcl (403 for push, else a dead letter)."""

    def __init__(self, kafka: KafkaConfig, policies: Mapping[str, Policy] | None = None,
                 acls: Mapping[str, Acl] | None = None) -> None:
        self.kafka = kafka
        self.policies = dict(policies or {})  # connector id -> governance (gateway.governance)
        self.acls = dict(acls or {})  # connector id -> what it may produce (gateway.acl)
        self.template = kafka.topic
        self.dead_letter_topic = kafka.dead_letter_topic
        # the schema registry's frame (5 bytes) is added when the relay sends the value
        self.limit = kafka.max_message_bytes - (5 if kafka.schema_registry else 0)
        self._topics: dict[tuple[str, str, str], tuple[str, Format, OutsideAcl | None]] = {}

    def forget(self, connector_id: str, acl: Acl | None, policy: Policy | None = None
               ) -> None:
        """A connector's options changed: its ACL and governance are these, its cached
        topics go."""
        if acl is not None:
            self.acls[connector_id] = acl
        else:
            self.acls.pop(connector_id, None)
        if policy is not None:
            self.policies[connector_id] = policy
        else:
            self.policies.pop(connector_id, None)
        self._topics = {k: v for k, v in self._topics.items() if k[0] != connector_id}

    def check_size(self, record: Record) -> None:
        """What the broker counts against ``message.max.bytes``: the record batch around
        one record (value, key, headers and their overhead), as the producer estimates
        it. The exact estimate only runs when the value comes near the limit."""
        r = record
        # 2 KiB covers the batch overhead and the headers: the trace context (at most
        # ~600 bytes) and a CloudEvent's, which repeat the key, type, source and ids.
        if (len(r.value) + 2 * (len(r.key) + len(r.event_type) + len(r.source)
                                + len(r.connector_id)) + 2048 <= self.limit):
            return
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(r.key, r.value, r.headers())
        if size > self.limit:
            raise PayloadTooLarge(f"the event would be {size} bytes on Kafka, more than"
                                  " kafka.max_message_bytes allows")

    def topic(self, connector: Connector[Any], source: str, event_type: str
              ) -> tuple[str, Format]:
        """The topic of ``connector``'s events of this source and type, and its format;
        OutsideAcl when the connector may not produce them (``gateway.acl``)."""
        cache_key = (connector.connector_id, source, event_type)
        found = self._topics.get(cache_key)
        if found is None:
            topic = connector.topic or topic_for(self.template, source=source, type=event_type,
                                                 connector_id=connector.connector_id)
            # not configured (a Records made outside the gateway): the narrow default
            acl = self.acls.get(connector.connector_id) or Acl(connector)
            try:
                acl.check(source, event_type, topic)
                refusal = None
            except OutsideAcl as exc:
                refusal = exc
            found = topic, self.kafka.format_for(topic), refusal
            if len(self._topics) < 10_000:
                self._topics[cache_key] = found
        if found[2] is not None:
            raise found[2]
        return found[0], found[1]

    def build(self, connector: Connector[Any], eid: str, *, source: str, type: str,
              timestamp: datetime, received_at: datetime, payload: dict[str, Any],
              raw: bytes | None = None, key: str | None = None, trace: Headers = (),
              handled: bool = False) -> Record:
        """``handled``: the payload's personal data was handled already (a replay of a
        stored delivery): it is not handled twice."""
        cid = connector.connector_id
        if len(type) > MAX_EVENT_TYPE:
            raise Unnormalizable(f"the event type is longer than {MAX_EVENT_TYPE} characters")
        topic, fmt = self.topic(connector, source, type)
        key_bytes = (key or cid).encode()
        pii = None
        policy = self.policies.get(cid)
        if policy is not None:  # before anything is stored: the contract, personal data
            try:
                declared = policy.check(type, payload)
            except SchemaViolation:  # counted here, whichever way the event came in
                METRICS.schema_violation(cid)
                raise
            if declared:  # data quality: how often declared fields come empty
                METRICS.fields(cid, [(f, payload.get(f) is None) for f in declared])
            if policy.fields:
                payload = payload if handled else policy.handle(payload)
                raw, pii = None, policy.manifest
        try:
            if fmt == ENVELOPE:
                value = encode_envelope(id=eid, source=source, type=type, timestamp=timestamp,
                                        connector_id=cid, received_at=received_at,
                                        payload=payload, raw_payload=raw, pii=pii)
                extra = trace
            else:
                received = rfc3339(received_at)
                build = cloudevent_binary if fmt == CLOUDEVENTS_BINARY else cloudevent_structured
                value, extra = build(
                    id=eid, source=source, type=type, connector_id=cid,
                    time=received if timestamp is received_at else rfc3339(timestamp),
                    received_at=received, key=key_bytes, payload=payload, raw=raw,
                    trace=trace, pii=orjson.dumps(pii) if pii is not None else None)
        except orjson.JSONEncodeError as exc:
            raise Unnormalizable(f"payload cannot be encoded: {exc}") from None
        record = Record(topic, key_bytes, value, eid, cid, type, source, fmt, extra)
        self.check_size(record)
        return record

    def dead_letter(self, connector: Connector[Any], eid: str, *, reason: str,
                    received_at: datetime, request_id: str | None, content_type: str | None,
                    body: str | None, body_base64: str | None = None, trace: Headers = (),
                    violations: list[dict[str, str]] | None = None,
                    delivery_id: str | None = None,
                    headers: Mapping[str, str] | None = None) -> Record:
        """The dead-letter record of a delivery or polled record that cannot become an
        envelope (PayloadTooLarge when the broker would refuse even that). With the
        connector's governance, the body's personal data is handled as in its events (a
        body that is not a JSON object is left out); ``violations``: where the payload
        broke its contract; ``delivery_id`` and ``headers`` (redacted: ``redacted``) are
        what normalizing it again needs (a redrive)."""
        cid = connector.connector_id
        policy = self.policies.get(cid)
        if policy is not None and policy.fields:
            body, body_base64 = policy.handle_text(body), None
        value = orjson.dumps({
            "id": eid, "connector_id": cid, "source": connector.source_slug,
            "reason": reason, "received_at": rfc3339(received_at), "request_id": request_id,
            "content_type": content_type, "body": body, "body_base64": body_base64,
            **({"delivery_id": delivery_id} if delivery_id is not None else {}),
            **({"headers": dict(headers)} if headers is not None else {}),
            **({"violations": violations} if violations is not None else {})})
        record = Record(self.dead_letter_topic, cid.encode(), value, eid, cid,
                        "gateway.dead_letter", connector.source_slug, DEAD_LETTER, trace)
        self.check_size(record)
        return record
