"""The request path: verify → normalize → make durable → audit → answer.

Publishing happens behind the buffer (``gateway.relay``); an answer of 2xx means the
event is durable. Every outcome, rejections included, leaves one audit line.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import structlog

from connectors.base import Connector, EventDraft, HandshakeReply, InboundRequest, event_id
from gateway.audit import AuditLog
from gateway.buffer import Buffer, Record
from gateway.config import GatewayConfig
from gateway.envelope import encode_envelope, rfc3339, topic_for
from gateway.errors import Rejected, Unavailable, UnknownConnector, Unnormalizable
from gateway.metrics import METRICS

log = structlog.get_logger(__name__)


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


class Pipeline:
    def __init__(self, settings: GatewayConfig, connectors: dict[str, Connector],
                 buffer: Buffer, audit: AuditLog) -> None:
        self.settings = settings
        self.connectors = connectors
        self.buffer = buffer
        self.audit = audit
        self._topics: dict[tuple[str, str], str] = {}

    async def webhook(self, connector_id: str, request: InboundRequest,
                      request_id: str) -> Answer:
        body_sha256 = hashlib.sha256(request.body).hexdigest()

        def audit(outcome: str, reason: str | None = None, ids: list[str] | None = None) -> None:
            self.audit.record(outcome, connector_id=connector_id, reason=reason,
                              event_ids=ids or (), request_id=request_id,
                              remote_addr=request.remote_addr, body_sha256=body_sha256,
                              size=len(request.body))
            METRICS.outcome(connector_id, outcome).inc()  # cached child: a dict lookup

        connector = self.connectors.get(connector_id)
        try:
            if connector is None:
                raise UnknownConnector(f"no enabled connector {connector_id!r}")
            early = connector.challenge(request)
            if early is not None:
                audit("handshake" if early.status < 400 else "rejected",
                      None if early.status < 400 else "invalid_challenge")
                return _handshake_answer(early)
            if request.method != "POST":
                return Answer.error(405, "method_not_allowed",
                                    "this connector takes POST deliveries", "rejected")
            await connector.authenticate(request)
            reply = await connector.respond(request)
        except Rejected as exc:
            audit("rejected", exc.reason)
            log.info("rejected", reason=exc.reason, request_id=request_id,
                     connector_id=connector_id)
            return Answer.error(exc.status, exc.code, exc.detail, "rejected")
        except Unavailable as unavailable:  # e.g. a signing certificate could not be fetched
            audit("failed", unavailable.code)
            return _unavailable(unavailable)

        if reply is not None:
            audit("handshake")
            return _handshake_answer(reply)

        delivery = connector.delivery_id(request)
        dedup_key = f"{connector_id}:{delivery}"  # connector ids never contain ':'
        try:
            drafts = connector.normalize(request)
            records = [self._record(connector, draft, delivery, i, request.received_at)
                       for i, draft in enumerate(drafts) if connector.allows(draft.type)]
        except Unnormalizable as exc:
            record = self._dead_letter(connector, request, delivery, exc.reason, request_id)
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

    def _topic(self, connector: Connector, event_type: str) -> str:
        cache_key = (connector.connector_id, event_type)
        topic = self._topics.get(cache_key)
        if topic is None:
            topic = connector.topic or topic_for(
                self.settings.kafka.topic, source=connector.source_slug, type=event_type,
                connector_id=connector.connector_id)
            if len(self._topics) < 10_000:
                self._topics[cache_key] = topic
        return topic

    def _record(self, connector: Connector, draft: EventDraft, delivery: str, index: int,
                received_at: datetime) -> Record:
        cid = connector.connector_id
        eid = event_id(cid, delivery, index)
        try:
            value = encode_envelope(
                id=eid, source=connector.source_slug, type=draft.type,
                timestamp=draft.timestamp or received_at, connector_id=cid,
                received_at=received_at, payload=draft.payload)
        except orjson.JSONEncodeError as exc:
            raise Unnormalizable(f"payload cannot be encoded: {exc}") from None
        return Record(topic=self._topic(connector, draft.type),
                      key=(draft.key or cid).encode(), value=value, event_id=eid,
                      connector_id=cid, event_type=draft.type, source=connector.source_slug)

    def _dead_letter(self, connector: Connector, request: InboundRequest, delivery: str,
                     reason: str, request_id: str) -> Record:
        cid = connector.connector_id
        eid = event_id(cid, delivery)
        try:
            text: str | None = request.body.decode("utf-8")
            b64 = None
        except UnicodeDecodeError:
            text, b64 = None, base64.b64encode(request.body).decode()
        value = orjson.dumps({
            "id": eid, "connector_id": cid, "source": connector.source_slug,
            "reason": reason, "received_at": rfc3339(request.received_at),
            "request_id": request_id, "content_type": request.header("content-type"),
            "body": text, "body_base64": b64,
        })
        return Record(topic=self.settings.kafka.dead_letter_topic, key=cid.encode(),
                      value=value, event_id=eid, connector_id=cid,
                      event_type="gateway.dead_letter", source=connector.source_slug)


def _handshake_answer(reply: HandshakeReply) -> Answer:
    return Answer(reply.status, reply.body, dict(reply.headers), reply.content_type,
                  outcome="handshake")


def _unavailable(exc: Unavailable) -> Answer:
    return Answer.error(503, exc.code, exc.detail, "failed",
                        {"Retry-After": str(exc.retry_after)})
