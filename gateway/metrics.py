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
        # (connector label, reason): every rejection, whoever sent it (a bounded label)
        self.rejections: dict[tuple[str, str], int] = {}
        self.latency_counts = [0] * (len(LATENCY_BOUNDS) + 1)
        self.latency_sum = 0.0
        self.published = 0  # events an in-process relay saw acknowledged
        self.started = time.time()  # since when these counts run
        # Per configured connector (gateway.certification reads them): counters named
        # "events", "bytes", "violations", "rejected:<reason>", "nulls:<field>",
        # "checks:<field>", and "newest" (when the last event was accepted, not summed).
        self.connectors: dict[str, dict[str, float]] = {}

    def _counts(self, connector_id: str) -> dict[str, float] | None:
        counts = self.connectors.get(connector_id)
        if counts is None and len(self.connectors) < MAX_LABELS:
            counts = self.connectors[connector_id] = {}
        return counts

    def add(self, connector_id: str, name: str, n: float = 1) -> None:
        counts = self._counts(connector_id)
        if counts is not None:
            counts[name] = counts.get(name, 0) + n

    def outcome(self, connector_id: str | None, label: str, outcome: str, reason: str | None,
                events: int, size: int | None) -> None:
        """One request's outcome: the requests counter under ``label``, and for a
        configured ``connector_id`` its events, bytes and rejections by reason."""
        self.count(label, outcome)
        if outcome == "rejected":
            self.rejected(label, reason)
        if connector_id is None or label != connector_id:
            return
        if outcome == "accepted":
            counts = self._counts(connector_id)
            if counts is not None:
                counts["events"] = counts.get("events", 0) + events
                counts["bytes"] = counts.get("bytes", 0) + (size or 0)
                counts["newest"] = time.time()
        elif outcome in ("rejected", "failed"):
            self.add(connector_id, f"{outcome}:{reason}")

    def schema_violation(self, connector_id: str) -> None:
        """An event that broke its connector's payload contract (dead-lettered)."""
        self.add(connector_id, "violations")

    def fields(self, connector_id: str, nulls: list[tuple[str, bool]]) -> None:
        """Declared fields of an accepted event, and which of them were null or absent."""
        counts = self._counts(connector_id)
        if counts is not None:
            for name, null in nulls:
                counts[f"checks:{name}"] = counts.get(f"checks:{name}", 0) + 1
                if null:
                    counts[f"nulls:{name}"] = counts.get(f"nulls:{name}", 0) + 1

    def rejected(self, label: str, reason: str | None) -> None:
        """One rejection by its reason (``gateway_rejections_total``)."""
        key = (label, reason or "-")
        if key in self.rejections:
            self.rejections[key] += 1
        elif len(self.rejections) < MAX_LABELS:
            self.rejections[key] = 1
        else:
            other = ("_other", key[1])
            self.rejections[other] = self.rejections.get(other, 0) + 1

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
                "rejections": [[cid, reason, n]
                               for (cid, reason), n in self.rejections.items()],
                "latency_counts": list(self.latency_counts), "latency_sum": self.latency_sum,
                "published": self.published, "connectors": self.connectors,
                "started": self.started}


def render(snapshots: list[dict[str, Any]], gauges: dict[str, float],
           connectors: dict[str, Any] | None = None) -> bytes:
    """The text exposition of ``snapshots`` summed, of the connectors' SLOs and
    certification (``gateway.certification``'s state), and of ``gauges``."""
    registry = CollectorRegistry()
    registry.register(_Families(snapshots, gauges))
    registry.register(_Certification(connectors or {}))
    return generate_latest(registry)


CERTIFICATION_STATES = ("pending", "monitoring", "certified", "failed")
_OBJECTIVES = ("freshness_minutes", "availability_percent", "error_rate_percent")


class _Certification(Collector):
    def __init__(self, connectors: dict[str, Any]) -> None:
        self.connectors = connectors

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily("gateway_connector_certification", "1 for the connector's"
                                  " certification state", labels=["connector_id", "state"])
        measured = GaugeMetricFamily("gateway_connector_slo_measured", "An objective's"
                                     " measured value over certification.measure_seconds",
                                     labels=["connector_id", "objective"])
        target = GaugeMetricFamily("gateway_connector_slo_objective", "An objective's"
                                   " target (governance.slo)", labels=["connector_id",
                                                                       "objective"])
        breached = GaugeMetricFamily("gateway_connector_slo_breached", "1 while an objective"
                                     " is breached", labels=["connector_id", "objective"])
        health = GaugeMetricFamily("gateway_connector_health", "1 for the connector's health"
                                   " (healthy, degraded, unhealthy)",
                                   labels=["connector_id", "status"])
        for cid, view in sorted(self.connectors.items()):
            status = view.get("health", {}).get("status")
            for name in ("healthy", "degraded", "unhealthy"):
                health.add_metric([cid, name], int(name == status))
            current = view.get("certification", {}).get("state")
            for name in CERTIFICATION_STATES:
                state.add_metric([cid, name], int(name == current))
            for objective in _OBJECTIVES:
                value = view.get("measured", {}).get(objective)
                if value is not None:
                    measured.add_metric([cid, objective], value)
                goal = view.get("objectives", {}).get(objective)
                if goal is not None:
                    target.add_metric([cid, objective], goal)
                    breached.add_metric([cid, objective],
                                        int(objective in view.get("breaches", ())))
        yield from (health, state, measured, target, breached)


_GAUGES = {
    "gateway_buffer_events": "Events in the local buffer",
    "gateway_buffer_bytes": "Bytes in the local buffer",
    "gateway_buffer_max_bytes": "buffer.max_bytes: past it, deliveries are answered 503",
    "gateway_buffer_dedup_bytes": "Bytes of deduplication state (counted in buffer.max_bytes)",
    "gateway_buffer_oldest_event_age_seconds": "Age of the oldest event not yet on Kafka",
    "gateway_buffer_commit_failing": "1 while the buffer's last commit failed",
    "gateway_quarantined_events": "Records Kafka and the dead-letter topic both refused,"
                                  " kept locally (gateway quarantine)",
    "gateway_relay_leader": "1 when a relay holds the buffer's lease",
    "gateway_relay_published_events": "Events the relay published since it started",
    "gateway_kafka_up": "1 when Kafka answered the relay's last request",
    "gateway_redis_up": "1 when Redis (redis.url: state shared by replicas) answered this"
                        " process's last call; absent without redis",
    "gateway_workers_reporting": "Worker processes whose counts these totals include",
}


class _Families(Collector):
    def __init__(self, snapshots: list[dict[str, Any]], gauges: dict[str, float]) -> None:
        self.snapshots = snapshots
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        requests: dict[tuple[str, str], int] = {}
        rejections: dict[tuple[str, str], int] = {}
        counts = [0] * (len(LATENCY_BOUNDS) + 1)
        total, published = 0.0, 0
        audit = [0, 0, 0]  # write errors, dropped lines, backlog
        connectors: dict[tuple[str, str], float] = {}
        for snap in self.snapshots:
            for cid, per_connector in snap.get("connectors", {}).items():
                for name, n in per_connector.items():
                    if name != "newest":
                        connectors[(cid, name)] = connectors.get((cid, name), 0) + n
            audit = [a + b for a, b in zip(audit, snap.get("audit", (0, 0, 0)), strict=True)]
            for cid, outcome, n in snap["requests"]:
                requests[(cid, outcome)] = requests.get((cid, outcome), 0) + n
            for cid, reason, n in snap.get("rejections", ()):
                rejections[(cid, reason)] = rejections.get((cid, reason), 0) + n
            counts = [a + b for a, b in zip(counts, snap["latency_counts"], strict=True)]
            total += snap["latency_sum"]
            published += snap["published"]
        family = CounterMetricFamily("gateway_requests", "Requests by connector and outcome",
                                     labels=["connector_id", "outcome"])
        for (cid, outcome), n in sorted(requests.items()):
            family.add_metric([cid, outcome], n)
        yield family
        rejected = CounterMetricFamily(
            "gateway_rejections", "Rejected requests by connector (or _unknown / -) and"
            " reason: the audit's rejected lines, and the logs' rejected events",
            labels=["connector_id", "reason"])
        for (cid, reason), n in sorted(rejections.items()):
            rejected.add_metric([cid, reason], n)
        yield rejected
        yield from _connector_families(connectors)
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


_CONNECTOR_COUNTERS = {  # counter name (its prefix before ':') -> family, help, 2nd label
    "events": ("gateway_connector_events_accepted", "Events accepted", None),
    "bytes": ("gateway_connector_bytes_accepted", "Body bytes of accepted requests", None),
    "violations": ("gateway_schema_violations", "Events that broke their connector's"
                   " payload contract (dead-lettered)", None),
    "rejected": ("gateway_connector_rejections", "Requests rejected, by reason", "reason"),
    "failed": ("gateway_connector_failures", "Requests the gateway failed (503, 500), by"
               " reason", "reason"),
    "nulls": ("gateway_connector_null_values", "Declared (schema) fields null or absent in"
              " accepted events", "field"),
    "checks": ("gateway_connector_field_checks", "Declared (schema) fields checked in"
               " accepted events", "field"),
}


def _connector_families(counts: dict[tuple[str, str], float]) -> Iterator[Metric]:
    families = {}
    for prefix, (name, doc, second) in _CONNECTOR_COUNTERS.items():
        families[prefix] = CounterMetricFamily(
            name, doc, labels=["connector_id", second] if second else ["connector_id"])
    for (cid, name), n in sorted(counts.items()):
        prefix, _, rest = name.partition(":")
        family = families.get(prefix)
        if family is not None:
            family.add_metric([cid, rest] if rest else [cid], n)
    yield from families.values()


INSTANCE_ENV = "GATEWAY_INSTANCE"  # set by ``gateway run`` for its workers and relay
STANDALONE = "standalone"


class MetricsSync:
    """Shares this worker's counts through the buffer and keeps the other workers' latest."""

    def __init__(self, metrics: Metrics, buffer: Buffer, audit: AuditLog | None = None,
                 role: str = "worker") -> None:
        self.metrics = metrics
        self.role = role  # "relay": the relay process's (pollers) counts, not a worker
        self.buffer = buffer
        self.audit = audit
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # the ``gateway run`` this process belongs to (its workers and its relay): totals
        # are that instance's, so two instances sharing a data directory never both
        # report the same counts (a sum() over them would count them twice)
        self.instance = os.environ.get(INSTANCE_ENV) or STANDALONE
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
        snap["role"] = self.role
        snap["instance"] = self.instance
        if self.audit is not None:
            snap["audit"] = [self.audit.errors, self.audit.dropped, self.audit.backlog]
        return snap

    async def sync(self) -> None:
        rows = await self.buffer.status.share_metrics(self.worker, orjson.dumps(self.own()),
                                                      time.time() - PEER_TTL)
        peers = [orjson.loads(row) for row in rows]
        self.peers = [p for p in peers if p.get("instance") == self.instance or (
            p.get("instance") == STANDALONE and p.get("role") == "relay")]

    async def _run(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception as exc:  # the disk refused: the totals wait, requests do not
                log.warning("metrics_sync_failed", error=type(exc).__name__)
            await asyncio.sleep(SYNC_EVERY)

    def totals(self) -> list[dict[str, Any]]:
        """Snapshots to sum: this worker's, now, and the latest of the others of its
        instance (and of a ``gateway relay``/``poll`` started on its own beside it)."""
        return [self.own(), *self.peers]


METRICS = Metrics()
