"""What the sender gets and what the audit says: one ``Answer`` per request, the
auditor that records each outcome (audit line, metrics, log), and the answers for
refusals, handshakes and a buffer that cannot take the event now."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from connectors.request import HandshakeReply, InboundRequest
from gateway.audit import AuditLog
from gateway.errors import Rejected, Unavailable, answer_for
from gateway.metrics import METRICS
from gateway.tracing import Trace

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
             trace: Trace | None = None) -> Audit:
    """Records one request's outcomes: the audit line (with the request's ``trace``) and
    the outcome counter (under ``label``, default the connector id)."""
    label = label or connector_id or "-"
    client_rid = client_request_id(request.headers)
    traceparent = trace.traceparent if trace is not None else None

    def audit(outcome: str, reason: str | None = None, ids: list[str] | None = None) -> None:
        log.record(outcome, connector_id=connector_id, reason=reason, event_ids=ids or (),
                   request_id=request_id, remote_addr=request.remote_addr,
                   body_sha256=body_sha256, size=len(request.body),
                   client_request_id=client_rid, traceparent=traceparent)
        METRICS.outcome(connector_id, label, outcome, reason, len(ids or ()),
                        len(request.body))
        if outcome == "rejected":  # logs, audit and metrics tell the same story
            structlog_log.info("rejected", reason=reason, request_id=request_id,
                               connector_id=connector_id, client_request_id=client_rid)

    return audit


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
