"""Prometheus metrics, served as text at ``GET /metrics``.

With several worker processes each worker reports its own counters (the scrape hits
one of them); buffer depth is read from the shared buffer and is the same everywhere.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector


class FastHistogram(Collector):
    """A histogram for the request path: one bisect and two additions per observation,
    no locks (observed from the event loop only); exported in the standard form."""

    def __init__(self, name: str, documentation: str, bounds: tuple[float, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def collect(self) -> Iterator[HistogramMetricFamily]:
        cumulative, buckets = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += count
            buckets.append(('+Inf' if bound == float('inf') else repr(bound), cumulative))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets,
                                    sum_value=self.sum)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gateway_requests", "Requests by connector and outcome",
            ["connector_id", "outcome"], registry=self.registry)
        self.latency = FastHistogram(
            "gateway_request_duration_seconds", "Time from request to answer",
            (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.registry.register(self.latency)
        self.published = Counter(
            "gateway_published_events", "Events this process's relay saw acknowledged by Kafka",
            registry=self.registry)
        self.relay_published = Gauge(
            "gateway_relay_published_events", "Events the relay published since it started",
            registry=self.registry)
        self.buffer_events = Gauge(
            "gateway_buffer_events", "Events in the local buffer", registry=self.registry)
        self.buffer_bytes = Gauge(
            "gateway_buffer_bytes", "Bytes in the local buffer", registry=self.registry)
        self._outcomes: dict[tuple[str, str], Counter] = {}
        self.kafka_up = Gauge(
            "gateway_kafka_up", "1 when Kafka answered the last request", registry=self.registry)

    def outcome(self, connector_id: str, outcome: str) -> Counter:
        """The request counter's child for one connector and outcome (cached)."""
        child = self._outcomes.get((connector_id, outcome))
        if child is None:
            child = self.requests.labels(connector_id, outcome)
            if len(self._outcomes) < 10_000:  # unknown connector ids must not grow it
                self._outcomes[(connector_id, outcome)] = child
        return child


METRICS = Metrics()
