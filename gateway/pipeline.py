"""The request path: verify → normalize → make durable → audit → answer.

Publishing happens behind the buffer (``gateway.relay``); an answer of 2xx means the
event is durable. Every outcome, rejections included, leaves one audit line.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import structlog
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from connectors.base import (
    Connector,
    EventDraft,
    HandshakeReply,
    InboundRequest,
    event_id,
    parse_time,
)
from connectors.ingress import Ingress
from gateway.audit import AuditLog
from gateway.buffer import Buffer, Record
from gateway.config import GatewayConfig, KafkaConfig
from gateway.envelope import encode_envelope, rfc3339, topic_for
from gateway.errors import (
    PayloadTooLarge,
    Rejected,
    SignatureError,
    Unavailable,
    UnknownConnector,
    Unnormalizable,
    answer_for,
)
from gateway.metrics import METRICS
from gateway.ratelimit import RateLimits

log = structlog_log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    outcome: str = ""

    @classmethod
    def json(cls, status: int, data: dict[str, Any], outcome: str,
             headers: dict[str, str] | None = None) -> Answer:
        return cls(status, orjson.dumps(data), headers or {}, outcome=outcome)

    @classmethod
    def error(cls, status: int, code: str, detail: str, outcome: str,
              headers: dict[str, str] | None = None) -> Answer:
        return cls.json(status, {"error": code, "detail": detail}, outcome, headers)


MAX_EVENT_TYPE = 256  # characters; a longer type is dead-lettered (400 on /api/events)
_RECEIVED = frozenset({"accepted", "duplicate", "filtered", "dead_lettered"})
UNKNOWN_CONNECTOR = "_unknown"  # the metrics label of every id that is not configured
MAX_ID_SHOWN = 100  # an unknown connector id is cut to this in audit lines and logs
MAX_PROBLEMS = 100  # problems listed in a 400 from /api/events; the rest are counted


_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def client_request_id(headers: Mapping[str, str]) -> str | None:
    """The client's own X-Request-Id, when it is a sane one: recorded beside ours."""
    given = headers.get("x-request-id")
    return given if given is not None and _CLIENT_REQUEST_ID.fullmatch(given) else None


def shown_id(connector_id: str) -> str:
    """A connector id from a URL, fit for an audit line or a log: bounded."""
    return connector_id if len(connector_id) <= MAX_ID_SHOWN else (
        connector_id[:MAX_ID_SHOWN] + "...")


class Records:
    """Kafka records from envelope fields, for every way events come in (webhooks,
    /api/events, pollers): the topic is the connector's or the template's (cached).
    A record the broker would refuse as too large raises PayloadTooLarge (413); an event
    type longer than ``MAX_EVENT_TYPE`` raises Unnormalizable (dead letter)."""

    def __init__(self, kafka: KafkaConfig) -> None:
        self.template = kafka.topic
        self.dead_letter_topic = kafka.dead_letter_topic
        self.limit = kafka.max_message_bytes
        self._topics: dict[tuple[str, str, str], str] = {}

    def check_size(self, record: Record) -> None:
        """What the broker counts against ``message.max.bytes``: the record batch around
        one record (value, key, headers and their overhead), as the producer estimates
        it. The exact estimate only runs when the value comes near the limit."""
        r = record
        if len(r.value) + len(r.key) + len(r.event_type) + len(r.source) + 1024 <= self.limit:
            return
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(r.key, r.value, r.headers())
        if size > self.limit:
            raise PayloadTooLarge(f"the event would be {size} bytes on Kafka, more than"
                                  " kafka.max_message_bytes allows")

    def topic(self, connector: Connector, source: str, event_type: str) -> str:
        cache_key = (connector.connector_id, source, event_type)
        topic = self._topics.get(cache_key)
        if topic is None:
            topic = connector.topic or topic_for(self.template, source=source, type=event_type,
                                                 connector_id=connector.connector_id)
            if len(self._topics) < 10_000:
                self._topics[cache_key] = topic
        return topic

    def build(self, connector: Connector, eid: str, *, source: str, type: str,
              timestamp: datetime, received_at: datetime, payload: dict[str, Any],
              raw: bytes | None = None, key: str | None = None) -> Record:
        cid = connector.connector_id
        if len(type) > MAX_EVENT_TYPE:
            raise Unnormalizable(f"the event type is longer than {MAX_EVENT_TYPE} characters")
        try:
            value = encode_envelope(id=eid, source=source, type=type, timestamp=timestamp,
                                    connector_id=cid, received_at=received_at,
                                    payload=payload, raw_payload=raw)
        except orjson.JSONEncodeError as exc:
            raise Unnormalizable(f"payload cannot be encoded: {exc}") from None
        record = Record(topic=self.topic(connector, source, type), key=(key or cid).encode(),
                        value=value, event_id=eid, connector_id=cid, event_type=type,
                        source=source)
        self.check_size(record)
        return record

    def dead_letter(self, connector: Connector, eid: str, *, reason: str,
                    received_at: datetime, request_id: str | None, content_type: str | None,
                    body: str | None, body_base64: str | None = None) -> Record:
        """The dead-letter record of a delivery or polled record that cannot become an
        envelope (PayloadTooLarge when the broker would refuse even that)."""
        cid = connector.connector_id
        value = orjson.dumps({
            "id": eid, "connector_id": cid, "source": connector.source_slug,
            "reason": reason, "received_at": rfc3339(received_at), "request_id": request_id,
            "content_type": content_type, "body": body, "body_base64": body_base64})
        record = Record(topic=self.dead_letter_topic, key=cid.encode(), value=value,
                        event_id=eid, connector_id=cid, event_type="gateway.dead_letter",
                        source=connector.source_slug)
        self.check_size(record)
        return record


class Pipeline:
    def __init__(self, settings: GatewayConfig, connectors: dict[str, Connector],
                 buffer: Buffer, audit: AuditLog) -> None:
        self.settings = settings
        self.connectors = connectors
        self.buffer = buffer
        self.audit = audit
        self.records = Records(settings.kafka)
        self.limits = RateLimits(connectors)
        self.ingress = {cid: guard for cid, c in connectors.items()
                        if (guard := Ingress.from_config(c.config)) is not None}
        self.acknowledgements = {cid: c.acknowledgement for cid, c in connectors.items()
                                 if c.acknowledgement is not None}

    async def webhook(self, connector_id: str, request: InboundRequest,
                      request_id: str) -> Answer:
        answer = await self._webhook(connector_id, request, request_id)
        ack = self.acknowledgements.get(connector_id)
        if ack is not None and answer.outcome in _RECEIVED:
            return Answer(ack.status, ack.body, dict(ack.headers), ack.content_type,
                          outcome=answer.outcome)
        return answer

    async def _webhook(self, connector_id: str, request: InboundRequest,
                       request_id: str) -> Answer:
        body_sha256 = request.sha256()
        connector = self.connectors.get(connector_id)
        if connector is None or not connector.takes_webhooks:
            # Any URL can name a connector: bounded in the audit, one label in metrics.
            audit = _auditor(self.audit, shown_id(connector_id), request, request_id,
                             body_sha256, UNKNOWN_CONNECTOR)
            return _refuse(UnknownConnector("no enabled webhook connector with this id"),
                           audit)
        audit = _auditor(self.audit, connector_id, request, request_id, body_sha256)
        try:
            guard = self.ingress.get(connector_id)
            if guard is not None:  # address and credentials, before any signature work
                guard.check(request)
            early = connector.challenge(request)
            if early is not None:
                audit("handshake" if early.status < 400 else "rejected",
                      None if early.status < 400 else "invalid_challenge")
                return _handshake_answer(early)
            if request.method not in connector.methods:
                return Answer.error(405, "method_not_allowed",
                                    "this connector takes "
                                    + " and ".join(sorted(connector.methods)) + " deliveries",
                                    "rejected")
            await connector.authenticate(request)
            reply = await connector.respond(request)
            if reply is None:
                self.limits.check(connector_id)
        except Rejected as exc:
            return _refuse(exc, audit)
        except Unavailable as unavailable:  # e.g. a signing certificate could not be fetched
            audit("failed", unavailable.code)
            return _unavailable(unavailable)

        if reply is not None:
            audit("handshake")
            return _handshake_answer(reply)

        delivery = connector.delivery_id(request)
        # connector ids never contain ':'
        replay = connector.replay_key(request)
        dedup_key: tuple[str, ...] = ((f"{connector_id}:{delivery}",) if replay is None else
                                      (f"{connector_id}:{delivery}", f"{connector_id}:{replay}"))
        try:
            drafts = connector.normalize(request)
            records = [self._record(connector, draft, delivery, i, request.received_at)
                       for i, draft in enumerate(drafts) if connector.allows(draft.type)]
        except PayloadTooLarge as exc:
            return _refuse(exc, audit)
        except Unnormalizable as exc:
            try:
                record = self._dead_letter(connector, request, delivery, exc.reason,
                                           request_id)
            except PayloadTooLarge as too_large:
                return _refuse(too_large, audit)
            try:
                fresh = await self.buffer.submit(dedup_key, [record])
            except Unavailable as unavailable:
                audit("failed", unavailable.code)
                return _unavailable(unavailable)
            if not fresh:
                audit("duplicate", ids=[record.event_id])
                return Answer.json(200, {"duplicate": True, "event_ids": [record.event_id]},
                                   "duplicate")
            audit("dead_lettered", exc.reason, [record.event_id])
            log.info("dead_lettered", reason=exc.reason, request_id=request_id,
                     connector_id=connector_id)
            return Answer.json(202, {"event_ids": [record.event_id], "dead_lettered": True},
                               "dead_lettered")

        if not records:
            audit("filtered", "event_not_allowed")
            return Answer.json(200, {"filtered": True, "event_ids": []}, "filtered")
        ids = [r.event_id for r in records]
        try:
            fresh = await self.buffer.submit(dedup_key, records)
        except Unavailable as unavailable:
            audit("failed", unavailable.code)
            return _unavailable(unavailable)
        if not fresh:
            audit("duplicate", ids=ids)
            return Answer.json(200, {"duplicate": True, "event_ids": ids}, "duplicate")
        audit("accepted", ids=ids)
        return Answer(202, b'{"event_ids":' + orjson.dumps(ids) + b"}", outcome="accepted")

    def _record(self, connector: Connector, draft: EventDraft, delivery: str, index: int,
                received_at: datetime) -> Record:
        return self.records.build(
            connector, event_id(connector.connector_id, delivery, index),
            source=connector.source_slug, type=draft.type,
            timestamp=draft.timestamp or received_at, received_at=received_at,
            payload=draft.payload, raw=draft.raw, key=draft.key)

    def _dead_letter(self, connector: Connector, request: InboundRequest, delivery: str,
                     reason: str, request_id: str) -> Record:
        cid = connector.connector_id
        eid = event_id(cid, delivery)
        try:
            text: str | None = request.body.decode("utf-8")
            b64 = None
        except UnicodeDecodeError:
            text, b64 = None, base64.b64encode(request.body).decode()
        return self.records.dead_letter(
            connector, eid, reason=reason, received_at=request.received_at,
            request_id=request_id, content_type=request.header("content-type"), body=text,
            body_base64=b64)


def _auditor(log: AuditLog, connector_id: str | None, request: InboundRequest,
             request_id: str, body_sha256: str, label: str | None = None
             ) -> Callable[..., None]:
    """Records one request's outcomes: the audit line and the outcome counter (under
    ``label``, default the connector id)."""
    label = label or connector_id or "-"
    client_rid = client_request_id(request.headers)

    def audit(outcome: str, reason: str | None = None, ids: list[str] | None = None) -> None:
        log.record(outcome, connector_id=connector_id, reason=reason, event_ids=ids or (),
                   request_id=request_id, remote_addr=request.remote_addr,
                   body_sha256=body_sha256, size=len(request.body),
                   client_request_id=client_rid)
        METRICS.count(label, outcome)
        if outcome == "rejected":  # logs, audit and metrics tell the same story
            structlog_log.info("rejected", reason=reason, request_id=request_id,
                               connector_id=connector_id, client_request_id=client_rid)

    return audit


def _refuse(exc: Rejected, audit: Callable[..., None]) -> Answer:
    """A 4xx for ``exc``, audited as rejected."""
    audit("rejected", exc.reason)
    a = answer_for(exc)
    return Answer.error(a.status, a.code, a.detail, "rejected", a.headers)


def _handshake_answer(reply: HandshakeReply) -> Answer:
    return Answer(reply.status, reply.body, dict(reply.headers), reply.content_type,
                  outcome="handshake")


def _unavailable(exc: Unavailable) -> Answer:
    a = answer_for(exc)
    return Answer.error(a.status, a.code, a.detail, "failed", a.headers)


def _client_event(item: Any, path: str) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    """One event of an /api/events body, validated; problems carry their JSON path."""
    if not isinstance(item, dict):
        return None, [{"path": path, "problem": "must be an object"}]
    problems = []
    for name in ("source", "type"):
        value = item.get(name)
        if not isinstance(value, str) or not value.strip():
            problems.append({"path": f"{path}.{name}", "problem": "must be a non-empty string"})
    if isinstance(item.get("type"), str) and len(item["type"]) > MAX_EVENT_TYPE:
        problems.append({"path": f"{path}.type",
                         "problem": f"must be at most {MAX_EVENT_TYPE} characters"})
    stamp = item.get("timestamp")
    parsed = parse_time(stamp) if isinstance(stamp, str) else None
    if parsed is None:
        problems.append({"path": f"{path}.timestamp",
                         "problem": "must be an ISO 8601 date-time string"})
    if not isinstance(item.get("payload"), dict):
        problems.append({"path": f"{path}.payload", "problem": "must be an object"})
    client_id = item.get("id")
    if client_id is not None and (not isinstance(client_id, str) or not client_id):
        problems.append({"path": f"{path}.id", "problem": "must be a non-empty string"})
    for extra in sorted(set(item) - {"source", "type", "timestamp", "payload", "id"}):
        problems.append({"path": f"{path}.{extra}", "problem": "unknown field"})
    return ({**item, "timestamp": parsed} if not problems else None), problems


class ApiEvents:
    """``POST /api/events``: already-normalized events from push connectors."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def _authenticate(self, request: InboundRequest) -> Connector:
        from connectors.push import PushConnector

        pushers = [c for c in self.pipeline.connectors.values() if isinstance(c, PushConnector)]
        if not any(c.presents_credentials(request) for c in pushers):
            raise SignatureError("no bearer token or signature", reason="missing_signature")
        failure: SignatureError | None = None
        for connector in pushers:  # the credentials say which connector is calling
            try:
                connector.verify(request)
                return connector
            except SignatureError as exc:
                failure = exc if failure is None or exc.reason == "stale_timestamp" else failure
        raise failure or SignatureError("token does not match")

    async def handle(self, request: InboundRequest, request_id: str) -> Answer:
        p = self.pipeline
        body_sha256 = request.sha256()
        audit = _auditor(p.audit, None, request, request_id, body_sha256)
        try:
            connector = self._authenticate(request)
        except SignatureError as exc:
            return _refuse(exc, audit)
        connector_id = connector.connector_id
        audit = _auditor(p.audit, connector_id, request, request_id, body_sha256)
        try:
            guard = p.ingress.get(connector_id)
            if guard is not None:
                guard.check(request)
            p.limits.check(connector_id)
        except Rejected as exc:
            return _refuse(exc, audit)
        try:
            body = request.json()
        except Unnormalizable:
            audit("rejected", "malformed")
            return Answer.error(400, "malformed", "body is not JSON", "rejected")
        items = body if isinstance(body, list) else [body]
        root = "$" if not isinstance(body, list) else None
        events, problems = [], []
        allowed = getattr(connector, "sources", None)
        for i, item in enumerate(items):
            path = root or f"$[{i}]"
            event, found = _client_event(item, path)
            if event is not None and allowed is not None and event["source"] not in allowed:
                found = [{"path": f"{path}.source", "problem": "not a source this connector"
                          " may write"}]
            problems.extend(found)
            events.append(event)
        if not items:
            problems.append({"path": "$", "problem": "no events"})
        records, keys = [], []
        if items:  # every valid event is built, so that a 400 lists every problem
            try:
                for i, event in enumerate(events):
                    if event is None:
                        continue
                    delivery = (f"client:{event['id']}" if event.get("id")
                                else f"sha256:{body_sha256}:{i}")
                    try:
                        records.append(p.records.build(
                            connector, event_id(connector_id, delivery),
                            source=event["source"], type=event["type"],
                            timestamp=event["timestamp"], received_at=request.received_at,
                            payload=event["payload"]))
                    except Unnormalizable as exc:
                        problems.append({"path": f"{root or f'$[{i}]'}.payload",
                                         "problem": str(exc)})
                    keys.append(f"{connector_id}:{delivery}")
            except PayloadTooLarge as exc:
                return _refuse(exc, audit)
        if problems:  # all or nothing
            audit("rejected", "malformed")
            shown = problems[:MAX_PROBLEMS]
            detail: dict[str, Any] = {"error": "malformed", "detail": "invalid events",
                                      "problems": shown}
            if len(problems) > len(shown):
                detail["more_problems"] = len(problems) - len(shown)
            return Answer.json(400, detail, "rejected")
        try:
            fresh = await p.buffer.submit_each(records, keys)
        except Unavailable as unavailable:
            audit("failed", unavailable.code)
            return _unavailable(unavailable)
        ids = [r.event_id for r in records]
        new = [i for i, f in zip(ids, fresh, strict=True) if f]
        dups = [i for i, f in zip(ids, fresh, strict=True) if not f]
        if not new:
            audit("duplicate", ids=ids)
            return Answer.json(200, {"duplicate": True, "event_ids": ids}, "duplicate")
        audit("accepted", ids=new)
        if dups:
            audit("duplicate", ids=dups)
        return Answer.json(202, {"event_ids": ids, "duplicates": dups}, "accepted")
