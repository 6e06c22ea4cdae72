"""The record blob with formats and headers (and the older blobs still read), the W3C
trace context rules, and the dead letter of a refused CloudEvent."""

from __future__ import annotations

import struct

import orjson
import pytest

from gateway import tracing
from gateway.buffer.codec import (
    CLOUDEVENTS_BINARY,
    CLOUDEVENTS_STRUCTURED,
    DEAD_LETTER,
    Record,
    pack,
    unpack,
)
from gateway.kafka_settings import KafkaConfig, TopicSpec
from gateway.publish import dead_letter

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_records_keep_their_format_and_headers_through_the_buffer() -> None:
    records = [
        Record("t", b"k", b"{}", "id-1", "c", "e", "s"),
        Record("t", b"k", b"{}", "id-2", "c", "e", "s", CLOUDEVENTS_BINARY,
               (("content-type", b"application/json"), ("ce_type", "é\x00,".encode()),
                ("traceparent", VALID.encode()))),
        Record("dlq", b"k", b"{}", "id-3", "c", "gateway.dead_letter", "s", DEAD_LETTER,
               (("traceparent", VALID.encode()),)),
    ]
    assert unpack(pack(records)) == records


def test_a_blob_written_before_formats_existed_is_still_read() -> None:
    """Version 0: no version byte, seven fields per record (a buffer left by an older
    gateway is published after the upgrade)."""
    fields = (b"events.github", b"github-main", b'{"id":"x"}', b"x", b"github-main",
              b"push", b"github")
    blob = struct.pack("!7I", *map(len, fields)) + b"".join(fields)
    [record] = unpack(blob * 2)[:1]
    assert record == Record("events.github", b"github-main", b'{"id":"x"}', "x",
                            "github-main", "push", "github")
    assert dict(record.headers())["event-id"] == b"x"


@pytest.mark.parametrize("header", [
    None, "", "garbage",
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  # upper case
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
    VALID + "-extra",  # version 00 has nothing after the flags
    "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
])
def test_an_invalid_traceparent_starts_a_new_trace_and_drops_tracestate(
        header: str | None) -> None:
    headers = {"tracestate": "congo=t61rcWkgMzE"}
    if header is not None:
        headers["traceparent"] = header
    trace = tracing.incoming(headers)
    assert trace.parent_span_id is None
    assert trace.state is None
    assert tracing.parse(trace.traceparent) is not None
    assert trace.trace_id != "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_valid_traceparent_is_continued_from_a_new_span() -> None:
    trace = tracing.incoming({"traceparent": VALID, "tracestate": "congo=t61rcWkgMzE"})
    assert (trace.trace_id, trace.parent_span_id) == ("4bf92f3577b34da6a3ce929d0e0e4736",
                                                       "00f067aa0ba902b7")
    assert trace.span_id not in ("00f067aa0ba902b7", "0" * 16)
    assert trace.traceparent == f"00-{trace.trace_id}-{trace.span_id}-01"
    assert trace.headers() == (("traceparent", trace.traceparent.encode()),
                               ("tracestate", b"congo=t61rcWkgMzE"))


def test_a_future_version_is_read_by_its_first_fields_and_flags_keep_only_sampled() -> None:
    trace = tracing.incoming(
        {"traceparent": "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what"})
    assert trace.parent_span_id == "00f067aa0ba902b7"
    assert trace.traceparent.startswith("00-")
    assert trace.flags == "01"
    unsampled = tracing.incoming({"traceparent": VALID[:-2] + "00"})
    assert unsampled.flags == "00"


@pytest.mark.parametrize("state", ["a=1," * 32 + "b=2", "k=" + "v" * 511, "a=1\x01b"])
def test_a_tracestate_past_the_limits_is_dropped(state: str) -> None:
    trace = tracing.incoming({"traceparent": VALID, "tracestate": state})
    assert trace.state is None
    assert trace.parent_span_id == "00f067aa0ba902b7"


def test_format_per_topic() -> None:
    kafka = KafkaConfig(format="cloudevents-binary", topics=[
        TopicSpec(name="events.orders", format="cloudevents-structured"),
        TopicSpec(pattern="events.legacy.*", format="envelope"),
        TopicSpec(pattern="events.*", partitions=3)])
    assert kafka.format_for("events.orders") == CLOUDEVENTS_STRUCTURED
    assert kafka.format_for("events.legacy.github") == "envelope"
    assert kafka.format_for("events.github") == CLOUDEVENTS_BINARY  # matched, no format
    assert kafka.format_for("other") == CLOUDEVENTS_BINARY
    assert KafkaConfig().format_for("events.github") == "envelope"


def test_the_dead_letter_of_a_refused_cloudevent_keeps_its_attributes() -> None:
    """In binary mode the value is only the payload: the attributes are in the headers,
    so a record Kafka refuses is dead-lettered with them."""
    record = Record("events.github", b"k", b'{"a":1}', "id-1", "c", "push", "github",
                    CLOUDEVENTS_BINARY, (("content-type", b"application/json"),
                                         ("ce_id", b"id-1"), ("traceparent", VALID.encode())))
    letter = dead_letter(record, "RecordTooLargeError", "events.dlq")
    value = orjson.loads(letter.value)
    assert value["event"] == {"a": 1}
    assert value["format"] == CLOUDEVENTS_BINARY
    assert value["headers"] == {"content-type": "application/json", "ce_id": "id-1",
                                "traceparent": VALID}
    assert letter.kind == DEAD_LETTER
    assert letter.extra == (("traceparent", VALID.encode()),)
    assert dict(letter.headers())["event-type"] == b"gateway.dead_letter"
