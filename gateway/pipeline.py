"""The webhook path: verify → normalize → make durable → audit → answer.

Publishing happens behind the buffer (``gateway.relay``); an answer of 2xx means the
event is durable. Every outcome, rejections included, leaves one audit line.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any

import orjson
import structlog

from connectors.base import Connector, PushSource, Webhook
from connectors.ingress import Ingress
from connectors.request import EventDraft, InboundRequest, event_id
from gateway.acl import Acl
from gateway.answers import (
    RECEIVED,
    UNKNOWN_CONNECTOR,
    Answer,
    Audit,
    auditor,
    handshake_answer,
    refuse,
    retry_later,
    shown_id,
    webhook_body,
)
from gateway.audit import AuditLog
from gateway.buffer import Buffer, Record
from gateway.buffer.codec import Headers
from gateway.config import GatewayConfig
from gateway.dedup import Durable
from gateway.deliveries import DeliveryStore
from gateway.errors import (
    Paused,
    PayloadTooLarge,
    Rejected,
    Unavailable,
    UnknownConnector,
    Unnormalizable,
)
from gateway.governance import Policy, SchemaViolation
from gateway.ratelimit import RateLimits
from gateway.records import Records, redacted, secret_headers
from gateway.shared import Shared
from gateway.telemetry import Telemetry
from gateway.tracing import Trace

log = structlog.get_logger(__name__)


class Pipeline:
    """Webhook deliveries, and what /api/events shares with them (ingress checks, rate
    limits, records, the buffer and the audit)."""

    def __init__(self, settings: GatewayConfig, connectors: Mapping[str, Connector[Any]],
                 buffer: Buffer, audit: AuditLog, telemetry: Telemetry | None = None,
                 policies: Mapping[str, Policy] | None = None,
                 acls: Mapping[str, Acl] | None = None,
                 deliveries: DeliveryStore | None = None,
                 shared: Shared | None = None) -> None:
        self.settings = settings
        self.deliveries = deliveries  # every request's outcome, kept (gateway.deliveries)
        self.paused: Callable[[], frozenset[str]] = frozenset  # gateway.admin.Controls
        self.telemetry = telemetry
        self.webhooks = {cid: c for cid, c in connectors.items() if isinstance(c, Webhook)}
        self.push_sources = {cid: c for cid, c in connectors.items()
                             if isinstance(c, PushSource)}
        self.buffer = buffer
        self.audit = audit
        self.records = Records(settings.kafka, policies, acls)
        self.limits = RateLimits(connectors, shared)
        self.durable = Durable(buffer, shared)  # behind the replicas' shared dedup
        self.ingress = {cid: guard for cid, c in connectors.items()
                        if (guard := Ingress.from_config(c.config)) is not None}
        self.acknowledgements = {cid: c.acknowledgement for cid, c in self.webhooks.items()
                                 if c.acknowledgement is not None}

    def swap(self, connectors: Mapping[str, Connector[Any]], acls: Mapping[str, Acl],
             policies: Mapping[str, Policy] | None = None,
             removed: Collection[str] = ()) -> None:
        """Takes these connectors (new ones, or new options: a rotated secret) from the
        next request on, and no more the ``removed``; a request already past its lookup
        finishes with the old one."""
        for cid in removed:
            for table in (self.webhooks, self.push_sources, self.ingress,
                          self.acknowledgements, self.limits.buckets):
                table.pop(cid, None)
            self.records.forget(cid, None, None)
        for cid, c in connectors.items():
            if not isinstance(c, Webhook):
                self.webhooks.pop(cid, None)  # a type that changed kind
            if not isinstance(c, PushSource):
                self.push_sources.pop(cid, None)
            self.acknowledgements.pop(cid, None)
            if isinstance(c, Webhook):
                self.webhooks[cid] = c
                if c.acknowledgement is not None:
                    self.acknowledgements[cid] = c.acknowledgement
            elif isinstance(c, PushSource):
                self.push_sources[cid] = c
            guard = Ingress.from_config(c.config)
            if guard is None:
                self.ingress.pop(cid, None)
            else:
                self.ingress[cid] = guard
            self.limits.replace(cid, c)
            self.records.forget(cid, acls.get(cid), (policies or {}).get(cid))

    async def webhook(self, connector_id: str, request: InboundRequest,
                      request_id: str, trace: Trace) -> Answer:
        answer = await self._webhook(connector_id, request, request_id, trace)
        ack = self.acknowledgements.get(connector_id)
        if ack is not None and answer.outcome in RECEIVED:
            return Answer(ack.status, ack.body, dict(ack.headers), ack.content_type,
                          outcome=answer.outcome)
        return answer

    async def _webhook(self, connector_id: str, request: InboundRequest,
                       request_id: str, trace: Trace) -> Answer:
        body_sha256 = request.sha256()
        connector = self.webhooks.get(connector_id)
        if connector is None:
            # Any URL can name a connector: bounded in the audit, one label in metrics.
            audit = auditor(self.audit, shown_id(connector_id), request, request_id,
                            body_sha256, UNKNOWN_CONNECTOR, trace, self.deliveries)
            return refuse(UnknownConnector("no enabled webhook connector with this id"),
                          audit)
        audit = auditor(self.audit, connector_id, request, request_id, body_sha256,
                        trace=trace, store=self.deliveries,
                        handle=webhook_body(self.records.policies.get(connector_id)),
                        secret_headers=secret_headers(connector))
        try:
            if connector_id in self.paused():
                raise Paused(f"connector {connector_id!r} is paused", retry_after=30)
            ended = await self._admit(connector, request, audit)
        except Rejected as exc:
            return refuse(exc, audit)
        except Unavailable as unavailable:  # e.g. a signing certificate could not be fetched
            return retry_later(unavailable, audit)
        if ended is not None:
            return ended

        delivery = connector.delivery_id(request)
        # connector ids never contain ':'
        replay = connector.replay_key(request)
        dedup_key: tuple[str, ...] = ((f"{connector_id}:{delivery}",) if replay is None else
                                      (f"{connector_id}:{delivery}", f"{connector_id}:{replay}"))
        headers = trace.headers()
        try:
            drafts = connector.normalize(request)
            records = [self.record(connector, draft, delivery, i, request.received_at,
                                   headers)
                       for i, draft in enumerate(drafts) if connector.allows(draft.type)]
        except PayloadTooLarge as exc:
            return refuse(exc, audit)
        except Unnormalizable as exc:
            return await self._dead_letter_delivery(connector, request, delivery, dedup_key,
                                                    exc, request_id, audit, trace)
        if not records:
            audit("filtered", "event_not_allowed")
            return Answer.json(200, {"filtered": True, "event_ids": []}, "filtered")
        ids = [r.event_id for r in records]
        refused = await self._submit(dedup_key, records, audit, trace)
        if refused is not None:
            return refused
        audit("accepted", ids=ids)
        return Answer(202, b'{"event_ids":' + orjson.dumps(ids) + b"}", outcome="accepted")

    async def _admit(self, connector: Webhook[Any], request: InboundRequest,
                     audit: Audit) -> Answer | None:
        """Ingress checks, handshakes, the method, the signature and the rate limit, in
        that order: the answer when the delivery ends here, else None. Raises what a
        connector raises (Rejected, Unavailable)."""
        guard = self.ingress.get(connector.connector_id)
        if guard is not None:  # address and credentials, before any signature work
            guard.check(request)
        early = connector.challenge(request)
        if early is not None:
            audit("handshake" if early.status < 400 else "rejected",
                  None if early.status < 400 else "invalid_challenge")
            return handshake_answer(early)
        if request.method not in connector.methods:
            audit("rejected", "method_not_allowed")
            return Answer.error(405, "method_not_allowed",
                                "this connector takes "
                                + " and ".join(sorted(connector.methods)) + " deliveries",
                                "rejected")
        await connector.verify(request)
        reply = await connector.handshake(request)
        if reply is not None:
            audit("handshake")
            return handshake_answer(reply)
        await self.limits.check(connector.connector_id)
        return None

    async def _submit(self, dedup_key: tuple[str, ...], records: list[Record],
                      audit: Audit, trace: Trace) -> Answer | None:
        """Make ``records`` durable under ``dedup_key``: None when they are new, else the
        answer (200 duplicate, 503 when the buffer cannot take them now)."""
        began = time.time_ns() if trace.span is not None else 0
        try:
            fresh = await self.durable.submit(dedup_key, records)
        except Unavailable as unavailable:
            return retry_later(unavailable, audit)
        finally:
            if began and self.telemetry is not None:
                self.telemetry.durable(trace, began, len(records))
        if fresh:
            return None
        ids = [r.event_id for r in records]
        audit("duplicate", ids=ids)
        return Answer.json(200, {"duplicate": True, "event_ids": ids}, "duplicate")

    async def _dead_letter_delivery(self, connector: Webhook[Any], request: InboundRequest,
                                    delivery: str, dedup_key: tuple[str, ...],
                                    problem: Unnormalizable, request_id: str, audit: Audit,
                                    trace: Trace) -> Answer:
        """An authentic delivery that cannot become events: its dead letter, durable."""
        reason = problem.reason
        try:
            record = self._dead_letter(connector, request, delivery, problem, request_id,
                                       trace.headers())
        except PayloadTooLarge as too_large:
            return refuse(too_large, audit)
        refused = await self._submit(dedup_key, [record], audit, trace)
        if refused is not None:
            return refused
        audit("dead_lettered", reason, [record.event_id])
        log.info("dead_lettered", reason=reason, request_id=request_id,
                 connector_id=connector.connector_id)
        return Answer.json(202, {"event_ids": [record.event_id], "dead_lettered": True},
                           "dead_lettered")

    def record(self, connector: Webhook[Any], draft: EventDraft, delivery: str, index: int,
               received_at: datetime, trace: Headers = (), handled: bool = False) -> Record:
        """The record of a delivery's ``index``-th event (``handled``: a stored delivery's
        personal data was handled already: ``Records.build``)."""
        return self.records.build(
            connector, event_id(connector.connector_id, delivery, index),
            source=connector.source_slug, type=draft.type,
            timestamp=draft.timestamp or received_at, received_at=received_at,
            payload=draft.payload, raw=draft.raw, key=draft.key, trace=trace,
            handled=handled)

    def _dead_letter(self, connector: Webhook[Any], request: InboundRequest, delivery: str,
                     problem: Unnormalizable, request_id: str, trace: Headers) -> Record:
        cid = connector.connector_id
        eid = event_id(cid, delivery)
        try:
            text: str | None = request.body.decode("utf-8")
            b64 = None
        except UnicodeDecodeError:
            text, b64 = None, base64.b64encode(request.body).decode()
        return self.records.dead_letter(
            connector, eid, reason=problem.reason, received_at=request.received_at,
            request_id=request_id, content_type=request.header("content-type"), body=text,
            body_base64=b64, trace=trace,
            violations=problem.violations if isinstance(problem, SchemaViolation) else None,
            delivery_id=delivery, headers=redacted(request.headers, secret_headers(connector)))
