"""Prometheus metrics, served as text at ``GET /metrics``, summed over the workers.

Each worker counts in plain Python on its event loop (no locks: one dict addition per
request) and, every few seconds, writes a snapshot of its counts into the shared buffer
(``MetricsSync``). A scrape reaches one worker; it answers with its own counts plus the
latest snapshot of every other worker, so the totals do not depend on which worker the
scrape hit. Snapshots of workers gone for ``PEER_TTL`` are dropped (the totals then fall,
which Prometheus reads as a counter reset). Buffer depth and Kafka's state come from the
shared buffer and are the same everywhere.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import socket
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from gateway.tasks import FAILURES, cancel, supervised

if TYPE_CHECKING:
    from gateway.audit import AuditLog
    from gateway.buffer import Buffer

log = structlog.get_logger(__name__)

LATENCY_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
MAX_LABELS = 10_000  # connector ids come from URLs: unknown ones must not grow this forever
SYNC_EVERY = 2.0
PEER_TTL = 600.0


class Metrics:
    """This process's counts."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = {}
        self.latency_counts = [0] * (len(LATENCY_BOUNDS) + 1)
        self.latency_sum = 0.0
        self.published = 0  # events an in-process relay saw acknowledged
        self.violations: dict[str, int] = {}  # configured connector id -> events

    def schema_violation(self, connector_id: str) -> None:
        """An event that broke its connector's payload contract (dead-lettered)."""
        self.violations[connector_id] = self.violations.get(connector_id, 0) + 1

    def count(self, connector_id: str, outcome: str) -> None:
        key = (connector_id, outcome)
        if key in self.requests:
            self.requests[key] += 1
        elif len(self.requests) < MAX_LABELS:
            self.requests[key] = 1
        else:  # past the bound, one series per outcome takes the rest
            other = ("_other", outcome)
            self.requests[other] = self.requests.get(other, 0) + 1

    def observe(self, seconds: float) -> None:
        self.latency_counts[bisect.bisect_left(LATENCY_BOUNDS, seconds)] += 1
        self.latency_sum += seconds

    def snapshot(self) -> dict[str, Any]:
        return {"requests": [[cid, outcome, n] for (cid, outcome), n in self.requests.items()],
                "latency_counts": list(self.latency_counts), "latency_sum": self.latency_sum,
                "published": self.published, "violations": self.violations}


def render(snapshots: list[dict[str, Any]], gauges: dict[str, float]) -> bytes:
    """The text exposition of ``snapshots`` summed, and of ``gauges``."""
    registry = CollectorRegistry()
    registry.register(_Families(snapshots, gauges))
    return generate_latest(registry)


_GAUGES = {
    "gateway_buffer_events": "Events in the local buffer",
    "gateway_buffer_bytes": "Bytes in the local buffer",
    "gateway_buffer_dedup_bytes": "Bytes of deduplication state (counted in buffer.max_bytes)",
    "gateway_buffer_oldest_event_age_seconds": "Age of the oldest event not yet on Kafka",
    "gateway_buffer_commit_failing": "1 while the buffer's last commit failed",
    "gateway_quarantined_events": "Records Kafka and the dead-letter topic both refused,"
                                  " kept locally (gateway quarantine)",
    "gateway_relay_leader": "1 when a relay holds the buffer's lease",
    "gateway_relay_published_events": "Events the relay published since it started",
    "gateway_kafka_up": "1 when Kafka answered the relay's last request",
    "gateway_workers_reporting": "Worker processes whose counts these totals include",
}


class _Families(Collector):
    def __init__(self, snapshots: list[dict[str, Any]], gauges: dict[str, float]) -> None:
        self.snapshots = snapshots
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        requests: dict[tuple[str, str], int] = {}
        counts = [0] * (len(LATENCY_BOUNDS) + 1)
        total, published = 0.0, 0
        audit = [0, 0, 0]  # write errors, dropped lines, backlog
        violations: dict[str, int] = {}
        for snap in self.snapshots:
            for cid, n in snap.get("violations", {}).items():
                violations[cid] = violations.get(cid, 0) + n
            audit = [a + b for a, b in zip(audit, snap.get("audit", (0, 0, 0)), strict=True)]
            for cid, outcome, n in snap["requests"]:
                requests[(cid, outcome)] = requests.get((cid, outcome), 0) + n
            counts = [a + b for a, b in zip(counts, snap["latency_counts"], strict=True)]
            total += snap["latency_sum"]
            published += snap["published"]
        family = CounterMetricFamily("gateway_requests", "Requests by connector and outcome",
                                     labels=["connector_id", "outcome"])
        for (cid, outcome), n in sorted(requests.items()):
            family.add_metric([cid, outcome], n)
        yield family
        family = CounterMetricFamily("gateway_schema_violations", "Events that broke their"
                                     " connector's payload contract (dead-lettered)",
                                     labels=["connector_id"])
        for cid, n in sorted(violations.items()):
            family.add_metric([cid], n)
        yield family
        cumulative, buckets = 0, []
        for bound, count in zip((*LATENCY_BOUNDS, float("inf")), counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily("gateway_request_duration_seconds",
                                    "Time from request to answer", buckets=buckets,
                                    sum_value=total)
        yield CounterMetricFamily("gateway_published_events",
                                  "Events an in-process relay saw acknowledged by Kafka",
                                  value=published)
        for name, doc in _GAUGES.items():
            yield GaugeMetricFamily(name, doc, value=self.gauges.get(name, 0))
        yield CounterMetricFamily("gateway_audit_errors",
                                  "Failed attempts to write the audit trail", value=audit[0])
        yield CounterMetricFamily("gateway_audit_dropped_lines",
                                  "Audit lines dropped past the backlog bound", value=audit[1])
        yield GaugeMetricFamily("gateway_audit_backlog_lines",
                                "Audit lines waiting to be written", value=audit[2])
        failures = CounterMetricFamily("gateway_task_failures",
                                       "Background task failures (each restarted)",
                                       labels=["task"])
        for task, n in sorted(FAILURES.items()):
            failures.add_metric([task], n)
        yield failures


class MetricsSync:
    """Shares this worker's counts through the buffer and keeps the other workers' latest."""

    def __init__(self, metrics: Metrics, buffer: Buffer, audit: AuditLog | None = None
                 ) -> None:
        self.metrics = metrics
        self.buffer = buffer
        self.audit = audit
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.peers: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = supervised("metrics-sync", self._run)

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    def own(self) -> dict[str, Any]:
        """This worker's snapshot: its counts and its audit writer's."""
        snap = self.metrics.snapshot()
        if self.audit is not None:
            snap["audit"] = [self.audit.errors, self.audit.dropped, self.audit.backlog]
        return snap

    async def sync(self) -> None:
        rows = await self.buffer.status.share_metrics(self.worker, orjson.dumps(self.own()),
                                                      time.time() - PEER_TTL)
        self.peers = [orjson.loads(row) for row in rows]

    async def _run(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception as exc:  # the disk refused: the totals wait, requests do not
                log.warning("metrics_sync_failed", error=type(exc).__name__)
            await asyncio.sleep(SYNC_EVERY)

    def totals(self) -> list[dict[str, Any]]:
        """Snapshots to sum: this worker's, now, and the others' latest."""
        return [self.own(), *self.peers]


METRICS = Metrics()
