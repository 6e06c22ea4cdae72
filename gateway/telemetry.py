"""Spans over OTLP, when ``telemetry.otlp_endpoint`` is set (off by default).

Three spans per event, in the request's trace (``gateway.tracing``):

- ``receive`` (SERVER): the request, from its first byte to the answer; a child of the
  sender's span when it sent a ``traceparent``. Its span id is the one the records'
  ``traceparent`` names, so a consumer's spans hang below it.
- ``durable`` (INTERNAL, child of ``receive``): making the events durable (the buffer's
  fsynced group commit, deduplication included).
- ``publish <topic>`` (PRODUCER, child of ``receive``, in the relay's process): from the
  send of the record's batch to Kafka's acknowledgement.

The OpenTelemetry SDK is imported only when an endpoint is configured; with none, the
gateway pays nothing but the trace context itself. Spans are exported in batches from a
thread of the SDK (``BatchSpanProcessor``: a bounded queue that drops the oldest spans
when the collector cannot keep up, never blocking the event loop).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.buffer.codec import Record
from gateway.telemetry_settings import TelemetryConfig
from gateway.tracing import Trace, incoming, parse

MAX_QUEUED_SPANS = 8192  # per process; past it the SDK drops the oldest


class Telemetry:
    """The process's tracer; build it with ``Telemetry.from_config`` (None when off)."""

    def __init__(self, config: TelemetryConfig, role: str) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import (
            NonRecordingSpan,
            SpanContext,
            SpanKind,
            TraceFlags,
            TraceState,
            set_span_in_context,
        )

        self._kinds = SpanKind
        self._context_of = set_span_in_context
        self._remote = (NonRecordingSpan, SpanContext, TraceFlags, TraceState)
        self.provider = TracerProvider(resource=Resource.create({
            "service.name": config.service_name, "gateway.process": role}))
        self.provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"{config.otlp_endpoint}/v1/traces", timeout=10),
            max_queue_size=MAX_QUEUED_SPANS, schedule_delay_millis=1000))
        self.tracer = self.provider.get_tracer("event-gateway")

    @classmethod
    def from_config(cls, config: TelemetryConfig, role: str) -> Telemetry | None:
        return cls(config, role) if config.otlp_endpoint else None

    def _parent(self, trace_id: str, span_id: str, flags: str, state: str | None) -> Any:
        """The context of a remote span, for a child of it."""
        non_recording, span_context, trace_flags, trace_state = self._remote
        return self._context_of(non_recording(span_context(
            int(trace_id, 16), int(span_id, 16), is_remote=True,
            trace_flags=trace_flags(int(flags, 16) & 1),
            trace_state=trace_state.from_header([state]) if state else None)))

    def receive(self, headers: Mapping[str, str], name: str, connector_id: str | None,
                began: float) -> Trace:
        """The request's ``receive`` span (begun at ``began``, a ``time.perf_counter``),
        and the trace context its records carry."""
        sender = incoming(headers)
        parent = (self._parent(sender.trace_id, sender.parent_span_id, sender.flags,
                               sender.state) if sender.parent_span_id is not None else None)
        start = time.time_ns() - int((time.perf_counter() - began) * 1e9)
        span = self.tracer.start_span(name, context=parent, kind=self._kinds.SERVER,
                                      start_time=start)
        if connector_id is not None:
            span.set_attribute("gateway.connector_id", connector_id)
        ctx = span.get_span_context()
        return Trace(f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", sender.parent_span_id,
                     "01" if ctx.trace_flags.sampled else "00", sender.state, span)

    def answered(self, trace: Trace, status: int, outcome: str) -> None:
        span = trace.span
        if span is not None:
            span.set_attribute("http.response.status_code", status)
            span.set_attribute("gateway.outcome", outcome)
            span.end()

    def durable(self, trace: Trace, began_ns: int, events: int) -> None:
        """The ``durable`` span: from ``began_ns`` (``time.time_ns``) to now."""
        if trace.span is None:
            return
        span = self.tracer.start_span("durable", context=self._context_of(trace.span),
                                      start_time=began_ns)
        span.set_attribute("gateway.events", events)
        span.end()

    def published(self, records: Iterable[Record], began_ns: int) -> None:
        """One ``publish`` span per record that carries a trace, from ``began_ns`` to now."""
        end = time.time_ns()
        for record in records:
            traceparent = next((v for n, v in record.extra if n == "traceparent"), None)
            found = parse(traceparent.decode()) if traceparent is not None else None
            if found is None:
                continue
            span = self.tracer.start_span(
                f"publish {record.topic}", context=self._parent(*found, None),
                kind=self._kinds.PRODUCER, start_time=began_ns, attributes={
                    "messaging.system": "kafka", "messaging.operation.type": "send",
                    "messaging.destination.name": record.topic,
                    "messaging.message.id": record.event_id,
                    "gateway.connector_id": record.connector_id})
            span.end(end_time=end)

    def close(self) -> None:
        """Export what is queued (bounded by the exporter's timeout), then stop."""
        self.provider.shutdown()
