"""What the sender gets and what the audit says: one ``Answer`` per request, the
auditor that records each outcome (audit line, metrics, log), and the answers for
refusals, handshakes and a buffer that cannot take the event now."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
import structlog

from connectors.request import HandshakeReply, InboundRequest
from gateway.audit import AuditLog
from gateway.errors import Rejected, Unavailable, answer_for
from gateway.metrics import METRICS
from gateway.records import redacted
from gateway.tracing import Trace

if TYPE_CHECKING:
    from gateway.deliveries import DeliveryStore
    from gateway.governance import Policy

structlog_log = structlog.get_logger(__name__)

Audit = Callable[..., None]  # records one outcome of a request (``auditor``)


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


RECEIVED = frozenset({"accepted", "duplicate", "filtered", "dead_lettered"})
UNKNOWN_CONNECTOR = "_unknown"  # the metrics label of every id that is not configured
MAX_ID_SHOWN = 100  # an unknown connector id is cut to this in audit lines and logs


_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def client_request_id(headers: Mapping[str, str]) -> str | None:
    """The client's own X-Request-Id, when it is a sane one: recorded beside ours."""
    given = headers.get("x-request-id")
    return given if given is not None and _CLIENT_REQUEST_ID.fullmatch(given) else None


def shown_id(connector_id: str) -> str:
    """A connector id from a URL, fit for an audit line or a log: bounded."""
    return connector_id if len(connector_id) <= MAX_ID_SHOWN else (
        connector_id[:MAX_ID_SHOWN] + "...")


def auditor(log: AuditLog, connector_id: str | None, request: InboundRequest,
             request_id: str, body_sha256: str, label: str | None = None,
             trace: Trace | None = None, store: DeliveryStore | None = None,
             handle: Callable[[bytes], bytes] | None = None,
             secret_headers: Collection[str] = ()) -> Audit:
    """Records one request's outcomes: the audit line (with the request's ``trace``), the
    outcome counter (under ``label``, default the connector id) and, with a ``store``,
    the delivery itself (headers redacted, ``secret_headers`` too: the connector's own;
    the body through ``handle``: its personal data handled, ``webhook_body``)."""
    label = label or connector_id or "-"
    client_rid = client_request_id(request.headers)
    traceparent = trace.traceparent if trace is not None else None
    kept: list[tuple[dict[str, str], bytes, bool]] = []  # made once, for the first outcome

    def keep(outcome: str, reason: str | None, ids: list[str]) -> None:
        assert store is not None
        if not kept:  # the raw values of personal data are never stored
            body = request.body if handle is None else handle(request.body)
            kept.append((redacted(request.headers, secret_headers), body, handle is not None))
        headers, body, handled = kept[0]
        store.record(request_id, outcome, connector_id, reason, ids, request.method,
                     urlsplit(request.url).path, headers, body, handled)

    def audit(outcome: str, reason: str | None = None, ids: list[str] | None = None) -> None:
        log.record(outcome, connector_id=connector_id, reason=reason, event_ids=ids or (),
                   request_id=request_id, remote_addr=request.remote_addr,
                   body_sha256=body_sha256, size=len(request.body),
                   client_request_id=client_rid, traceparent=traceparent)
        METRICS.outcome(connector_id, label, outcome, reason, len(ids or ()),
                        len(request.body))
        if store is not None:
            keep(outcome, reason, ids or [])
        if outcome == "rejected":  # logs, audit and metrics tell the same story
            structlog_log.info("rejected", reason=reason, request_id=request_id,
                               connector_id=connector_id, client_request_id=client_rid)

    return audit


def webhook_body(policy: Policy | None) -> Callable[[bytes], bytes] | None:
    """A webhook body as the delivery store keeps it: with the connector's personal data
    handled (nothing, when it is not a JSON object in which to find it)."""
    if policy is None or not policy.fields:
        return None

    def handle(body: bytes) -> bytes:
        text = policy.handle_text(body.decode("utf-8", "replace"))
        return text.encode() if text is not None else b""
    return handle


def events_body(policy: Policy | None) -> Callable[[bytes], bytes] | None:
    """An ``/api/events`` body as the delivery store keeps it: each event's payload
    handled (nothing, when the body is not events in which to find it)."""
    if policy is None or not policy.fields:
        return None

    def handle(body: bytes) -> bytes:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return b""
        items = parsed if isinstance(parsed, list) else [parsed]
        if not all(isinstance(i, dict) and isinstance(i.get("payload"), dict)
                   for i in items):
            return b""
        for item in items:
            item["payload"] = policy.handle(item["payload"])
        return orjson.dumps(parsed)
    return handle


def refuse(exc: Rejected, audit: Audit) -> Answer:
    """A 4xx for ``exc``, audited as rejected."""
    a = answer_for(exc)
    audit("rejected", a.reason)
    return Answer.error(a.status, a.code, a.detail, "rejected", a.headers)


def handshake_answer(reply: HandshakeReply) -> Answer:
    return Answer(reply.status, reply.body, dict(reply.headers), reply.content_type,
                  outcome="handshake")


def retry_later(exc: Unavailable, audit: Audit) -> Answer:
    """A 503 with Retry-After for ``exc``, audited as failed."""
    a = answer_for(exc)
    audit("failed", a.reason)
    return Answer.error(a.status, a.code, a.detail, "failed", a.headers)
