"""Stored deliveries through the connectors' current configuration again (``POST
/admin/replay``, ``POST /admin/dlq/redrive``, ``gateway replay``).

Only deliveries that were once authentic are taken (stored as accepted, duplicate,
filtered or dead-lettered): their signature and replay window are not checked again
(the headers were stored redacted, and the window has passed), everything after is as
for a new delivery: normalization, the ``events`` allow-list, the ACL, governance. The
events keep their ids (the same delivery id, the same index), so consumers deduplicate
a replay as they would a redelivery; they are made durable without the deduplication
window (a replay is asked for). Each is audited ``replayed``.

A redrive takes dead letters only, and publishes those that now normalize; the others
stay where they are (nothing new is dead-lettered).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.base import Webhook
from connectors.request import InboundRequest
from gateway.deliveries import Delivery
from gateway.errors import PayloadTooLarge, Unavailable, Unnormalizable
from gateway.pipeline import Pipeline

AUTHENTIC = ("accepted", "duplicate", "filtered", "dead_lettered")


@dataclass
class Report:
    replayed: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        return {"replayed": self.replayed, "skipped": self.skipped}


def _latest(deliveries: list[Delivery]) -> list[Delivery]:
    """One row per request (its most telling outcome), oldest request first."""
    rank = {o: i for i, o in enumerate(("dead_lettered", "accepted", "filtered",
                                        "duplicate"))}
    best: dict[str, Delivery] = {}
    for d in deliveries:
        if d.outcome not in AUTHENTIC:
            continue
        held = best.get(d.request_id)
        if held is None or rank[d.outcome] < rank[held.outcome]:
            best[d.request_id] = d
    return sorted(best.values(), key=lambda d: d.at)


async def replay(pipeline: Pipeline, rows: list[Delivery], *, redrive: bool = False
                 ) -> Report:
    """Each stored delivery through its connector again; see the module."""
    report = Report()
    seen = {d.request_id for d in rows}
    for d in _latest(rows):
        seen.discard(d.request_id)
        if redrive and d.outcome != "dead_lettered":
            continue
        connector = pipeline.webhooks.get(d.connector_id or "")
        if connector is None:
            report.skipped.append({"request_id": d.request_id,
                                   "reason": "no such webhook connector now"})
            continue
        try:
            ids = await _again(pipeline, connector, d)
        except Unnormalizable as exc:
            report.skipped.append({"request_id": d.request_id, "reason": exc.reason})
            continue
        except (PayloadTooLarge, Unavailable) as exc:
            report.skipped.append({"request_id": d.request_id, "reason": str(exc)})
            continue
        report.replayed.append({"request_id": d.request_id, "event_ids": ids})
        pipeline.audit.record("replayed", connector_id=connector.connector_id,
                              reason="redrive" if redrive else None, event_ids=ids,
                              request_id=d.request_id)
    report.skipped.extend({"request_id": r, "reason": "never authentic (or not stored)"}
                          for r in sorted(seen))
    return report


async def _again(pipeline: Pipeline, connector: Webhook[Any], d: Delivery) -> list[str]:
    request = InboundRequest(d.method or "POST", f"http://replay{d.path or '/'}",
                             d.headers, {}, d.body, None,
                             datetime.fromtimestamp(d.at, UTC))
    delivery = connector.delivery_id(request)
    drafts = connector.normalize(request)
    records = [pipeline.record(connector, draft, delivery, i, request.received_at,
                               handled=d.handled)
               for i, draft in enumerate(drafts) if connector.allows(draft.type)]
    if not records:
        raise Unnormalizable("no event the connector allows")
    marker = uuid.uuid4().hex  # a replay is asked for: past the deduplication window
    await pipeline.buffer.outbox.submit_each(
        records, [f"replay:{marker}:{i}" for i in range(len(records))])
    return [r.event_id for r in records]
