"""``POST /api/events``: already-normalized events from push connectors, all or nothing."""

from __future__ import annotations

import time
from typing import Any

from connectors.base import PushSource
from connectors.errors import SignatureError
from connectors.request import InboundRequest, event_id, parse_time
from gateway.acl import OutsideAcl
from gateway.answers import Answer, Audit, auditor, events_body, refuse, retry_later
from gateway.buffer import Record
from gateway.buffer.codec import Headers
from gateway.errors import Paused, PayloadTooLarge, Rejected, Unavailable, Unnormalizable
from gateway.governance import SchemaViolation
from gateway.pipeline import Pipeline
from gateway.records import MAX_EVENT_TYPE, secret_headers
from gateway.tracing import Trace

MAX_PROBLEMS = 100  # problems listed in a 400 from /api/events; the rest are counted


def _nothing(body: bytes) -> bytes:
    """The body the delivery store keeps of a request no connector authenticated."""
    return b""


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


def _validate(items: list[Any], root: str | None
              ) -> tuple[list[dict[str, Any] | None], list[dict[str, str]]]:
    """Each event validated (None where it is not valid), and every problem found."""
    events: list[dict[str, Any] | None] = []
    problems: list[dict[str, str]] = []
    for i, item in enumerate(items):
        path = root or f"$[{i}]"
        event, found = _client_event(item, path)
        problems.extend(found)
        events.append(event)
    if not items:
        problems.append({"path": "$", "problem": "no events"})
    return events, problems


def _malformed(problems: list[dict[str, str]], audit: Audit) -> Answer:
    """400 listing the first ``MAX_PROBLEMS`` problems (and how many more there were)."""
    audit("rejected", "malformed")
    shown = problems[:MAX_PROBLEMS]
    detail: dict[str, Any] = {"error": "malformed", "detail": "invalid events",
                              "problems": shown}
    if len(problems) > len(shown):
        detail["more_problems"] = len(problems) - len(shown)
    return Answer.json(400, detail, "rejected")


class ApiEvents:
    """``POST /api/events``: already-normalized events from push connectors."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def _authenticate(self, request: InboundRequest) -> PushSource[Any]:
        pushers = self.pipeline.push_sources.values()
        if not any(c.presents_credentials(request) for c in pushers):
            raise SignatureError("no bearer token or signature", reason="missing_signature")
        failure: SignatureError | None = None
        for connector in pushers:  # the credentials say which connector is calling
            try:
                await connector.verify(request)
                return connector
            except SignatureError as exc:
                failure = exc if failure is None or exc.reason == "stale_timestamp" else failure
        raise failure or SignatureError("token does not match")

    def _build(self, connector: PushSource[Any], events: list[dict[str, Any] | None],
               request: InboundRequest, root: str | None, problems: list[dict[str, str]],
               forbidden: list[dict[str, str]], trace: Headers
               ) -> tuple[list[Record], list[str]]:
        """Records and deduplication keys of the valid events; an event whose payload
        cannot be encoded adds a problem, one outside the connector's ACL a refusal.
        Raises PayloadTooLarge."""
        cid = connector.connector_id
        records, keys = [], []
        for i, event in enumerate(events):
            if event is None:
                continue
            delivery = (f"client:{event['id']}" if event.get("id")
                        else f"sha256:{request.sha256()}:{i}")
            try:
                records.append(self.pipeline.records.build(
                    connector, event_id(cid, delivery), source=event["source"],
                    type=event["type"], timestamp=event["timestamp"],
                    received_at=request.received_at, payload=event["payload"], trace=trace))
            except SchemaViolation as exc:  # the client's to fix: a 400 with where
                problems.extend({"path": f"{root or f'$[{i}]'}.payload{v['path'][1:]}",
                                 "problem": f"schema_violation: {v['keyword']}"}
                                for v in exc.violations)
            except OutsideAcl as exc:
                forbidden.append({"path": root or f"$[{i}]", "problem": str(exc)})
            except Unnormalizable as exc:
                problems.append({"path": f"{root or f'$[{i}]'}.payload", "problem": str(exc)})
            keys.append(f"{cid}:{delivery}")
        return records, keys

    async def _admit(self, connector_id: str, request: InboundRequest) -> None:
        """A paused connector, the ingress checks, the rate limit: raises to refuse."""
        p = self.pipeline
        if connector_id in p.paused():
            raise Paused(f"connector {connector_id!r} is paused", retry_after=30)
        guard = p.ingress.get(connector_id)
        if guard is not None:
            guard.check(request)
        await p.limits.check(connector_id)

    async def handle(self, request: InboundRequest, request_id: str, trace: Trace) -> Answer:
        p = self.pipeline
        body_sha256 = request.sha256()
        audit = auditor(p.audit, None, request, request_id, body_sha256, trace=trace,
                        store=p.deliveries, handle=_nothing)  # whose governance: unknown
        try:
            connector = await self._authenticate(request)
        except SignatureError as exc:
            return refuse(exc, audit)
        connector_id = connector.connector_id
        audit = auditor(p.audit, connector_id, request, request_id, body_sha256, trace=trace,
                        store=p.deliveries,
                        handle=events_body(p.records.policies.get(connector_id)),
                        secret_headers=secret_headers(connector))
        try:
            await self._admit(connector_id, request)
        except Rejected as exc:
            return refuse(exc, audit)
        except Unavailable as paused:
            return retry_later(paused, audit)
        try:
            body = request.json()
        except Unnormalizable:
            audit("rejected", "malformed")
            return Answer.error(400, "malformed", "body is not JSON", "rejected")
        items = body if isinstance(body, list) else [body]
        root = "$" if not isinstance(body, list) else None
        events, problems = _validate(items, root)
        forbidden: list[dict[str, str]] = []
        try:  # every valid event is built, so that a 400 lists every problem
            records, keys = self._build(connector, events, request, root, problems,
                                        forbidden, trace.headers())
        except PayloadTooLarge as exc:
            return refuse(exc, audit)
        if problems:  # all or nothing
            return _malformed(problems, audit)
        if forbidden:
            audit("rejected", "forbidden")
            return Answer.json(403, {"error": "forbidden", "detail": "outside this connector's"
                                     " ACL (source, type or topic)",
                                     "problems": forbidden[:MAX_PROBLEMS]}, "rejected")
        began = time.time_ns() if trace.span is not None else 0
        try:
            fresh = await p.durable.submit_each(records, keys)
        except Unavailable as unavailable:
            return retry_later(unavailable, audit)
        finally:
            if began and p.telemetry is not None:
                p.telemetry.durable(trace, began, len(records))
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
