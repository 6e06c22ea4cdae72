"""W3C trace context (https://www.w3.org/TR/trace-context/) through the gateway.

Each request's ``traceparent`` (and ``tracestate``) is read from its headers, or a new
trace is started when it has none or an invalid one. The gateway's own hop gets a span id
of its own (the OpenTelemetry span's, when ``telemetry.otlp_endpoint`` is set; else a
random one), and the ``traceparent`` naming it goes onto every Kafka record the request
makes and into its audit line, so a consumer continues the same trace. Pollers start a
trace per page.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from gateway.buffer.codec import Headers

# version-traceid-parentid-flags; a future version may append "-..." fields.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
MAX_TRACESTATE = 512  # characters passed on; a longer tracestate is dropped
MAX_TRACESTATE_MEMBERS = 32


class Trace(NamedTuple):
    """The gateway's hop of a trace: the trace, the caller's span (None when the trace
    starts here) and the gateway's own span (``span``: its OpenTelemetry span, when
    ``gateway.telemetry`` records one)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    flags: str
    state: str | None = None
    span: Any = None

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def headers(self) -> Headers:
        """The Kafka record headers that carry this trace on."""
        if self.state is None:
            return (("traceparent", self.traceparent.encode()),)
        return (("traceparent", self.traceparent.encode()),
                ("tracestate", self.state.encode()))


# Ids from the Mersenne Twister, as OpenTelemetry's own generator makes them: random
# enough to be unique (W3C asks no more), and unlike os.urandom no system call on the
# request path (where it also gives up the GIL to the buffer's threads).
_bits = random.getrandbits


def new_span_id() -> str:
    while not (span := _bits(64)):
        pass
    return f"{span:016x}"


def new_trace_id() -> str:
    while not (trace := _bits(128)):
        pass
    return f"{trace:032x}"


def parse(traceparent: str | None) -> tuple[str, str, str] | None:
    """(trace id, parent span id, flags) of a valid ``traceparent``, else None."""
    if traceparent is None:
        return None
    found = _TRACEPARENT.fullmatch(traceparent.strip())
    if found is None:
        return None
    version, trace_id, parent, flags, rest = found.groups()
    if (version == "ff" or (version == "00" and rest is not None)
            or trace_id == _ZERO_TRACE or parent == _ZERO_SPAN):
        return None
    return trace_id, parent, flags


def _state(tracestate: str | None) -> str | None:
    """The ``tracestate`` to pass on: None when absent, empty or beyond the limits."""
    if not tracestate:
        return None
    tracestate = tracestate.strip()
    if (not tracestate or len(tracestate) > MAX_TRACESTATE
            or tracestate.count(",") >= MAX_TRACESTATE_MEMBERS
            or not tracestate.isprintable()):
        return None
    return tracestate


def incoming(headers: Mapping[str, str], span_id: str | None = None) -> Trace:
    """The gateway's hop of the request's trace (headers with lower-case names); a new
    trace when the request carries none, or an invalid one (its tracestate is then
    dropped too). ``span_id``: the gateway's span, when a tracer made one."""
    given = headers.get("traceparent")
    found = parse(given) if given is not None else None
    if found is None:
        return Trace(new_trace_id(), span_id or new_span_id(), None, "01")
    trace_id, parent, flags = found
    # Only the sampled bit is defined; the others are passed on as zero.
    return Trace(trace_id, span_id or new_span_id(), parent,
                 "01" if int(flags, 16) & 1 else "00", _state(headers.get("tracestate")))


def started() -> Trace:
    """A new trace (a poller's page)."""
    return Trace(new_trace_id(), new_span_id(), None, "01")
