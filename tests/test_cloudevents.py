"""``kafka.format``: CloudEvents in binary and structured mode, read back from a real
broker by the official CloudEvents SDK (``cloudevents.core.bindings.kafka``), with the
request's trace context on every record and in its audit line."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka as cek
from cloudevents.core.formats.json import JSONFormat

from gateway import tracing
from tests.helpers import (
    ThreadServer,
    base_config,
    consume,
    github_headers,
    thread_server,
    write_config,
)

SECRET = "ce-github-secret"
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
pytestmark = pytest.mark.kafka


def cloudevent(record: Any) -> BaseCloudEvent:
    """A consumer's reading of a record, as the CloudEvents Kafka binding decides it."""
    headers = {k.lower(): v for k, v in record.headers if v is not None}
    message = cek.KafkaMessage(headers=headers, key=record.key, value=record.value)
    if headers.get("content-type", b"").lower().startswith(b"application/cloudevents"):
        return cek.from_structured(message, JSONFormat())
    return cek.from_binary(message, JSONFormat())


def deliver(server: ThreadServer, connector: str, body: bytes, delivery: str,
            **headers: str) -> httpx.Response:
    return httpx.post(f"{server.url}/webhooks/{connector}", content=body,
                      headers={**github_headers(body, SECRET, delivery=delivery), **headers})


@pytest.fixture
def gateway(kafka_bootstrap: str, data_dir: Path, topic_prefix: str,
            tmp_path: Path) -> Iterator[tuple[ThreadServer, str]]:
    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.{{source}}")
    cfg["kafka"]["format"] = "cloudevents-binary"
    cfg["kafka"]["topics"] = [{"name": f"{topic_prefix}.structured",
                               "format": "cloudevents-structured"}]
    cfg["connectors"] = {
        "github-main": {"type": "github", "config": {"secret": SECRET}},
        "github-structured": {"type": "github", "config": {
            "secret": SECRET, "topic": f"{topic_prefix}.structured"}},
    }
    with thread_server(write_config(tmp_path / "gateway.yaml", cfg)) as server:
        yield server, topic_prefix


def test_binary_mode_is_read_by_the_cloudevents_sdk_with_the_trace_continued(
        gateway: tuple[ThreadServer, str], kafka_bootstrap: str, pull_request_body: bytes
) -> None:
    server, prefix = gateway
    r = deliver(server, "github-main", pull_request_body, str(uuid.uuid4()),
                traceparent=PARENT, tracestate="congo=t61rcWkgMzE")
    assert r.status_code == 202, r.text
    [event_id] = r.json()["event_ids"]

    [record] = consume(kafka_bootstrap, f"{prefix}.github", expect=1)
    event = cloudevent(record)
    assert event.get_id() == event_id
    assert event.get_source() == "github"
    assert event.get_type() == "pull_request.opened"
    assert event.get_time() == datetime(2011, 1, 26, 19, 1, 12, tzinfo=UTC)
    assert event.get_datacontenttype() == "application/json"
    assert event.get_data() == orjson.loads(pull_request_body)  # the payload is the value
    attributes = event.get_attributes()
    assert attributes["specversion"] == "1.0"
    assert attributes["connectorid"] == "github-main"
    assert attributes["partitionkey"] == "github-main"
    assert record.key == b"github-main"
    assert attributes["receivedat"].endswith("Z")
    assert record.value == pull_request_body  # as received, not re-serialized

    headers = dict(record.headers)
    trace_id, span, flags = tracing.parse(headers["traceparent"].decode()) or ("", "", "")
    assert trace_id == PARENT.split("-")[1]  # the sender's trace goes on ...
    assert span != PARENT.split("-")[2]  # ... from the gateway's own hop
    assert flags == "01"
    assert headers["tracestate"] == b"congo=t61rcWkgMzE"
    assert "event-id" not in headers  # the binding's headers, not the envelope's

    [line] = server.wait_audit(lambda line: line["outcome"] == "accepted")
    assert line["traceparent"] == headers["traceparent"].decode()


def test_a_topic_entry_sets_structured_mode_for_its_topic(
        gateway: tuple[ThreadServer, str], kafka_bootstrap: str, pull_request_body: bytes
) -> None:
    server, prefix = gateway
    r = deliver(server, "github-structured", pull_request_body, str(uuid.uuid4()))
    assert r.status_code == 202, r.text
    [event_id] = r.json()["event_ids"]

    [record] = consume(kafka_bootstrap, f"{prefix}.structured", expect=1)
    headers = dict(record.headers)
    assert headers["content-type"] == b"application/cloudevents+json"
    event = cloudevent(record)
    assert event.get_id() == event_id
    assert event.get_type() == "pull_request.opened"
    assert event.get_data() == orjson.loads(pull_request_body)
    assert event.get_attributes()["connectorid"] == "github-structured"
    assert event.get_attributes()["partitionkey"] == "github-structured"
    value = orjson.loads(record.value)
    assert value["specversion"] == "1.0"
    assert value["datacontenttype"] == "application/json"
    # no traceparent came in: a new trace starts at the gateway
    assert tracing.parse(headers["traceparent"].decode()) is not None


def test_dead_letters_keep_their_own_format(
        gateway: tuple[ThreadServer, str], kafka_bootstrap: str) -> None:
    server, prefix = gateway
    r = deliver(server, "github-main", b"{not json", str(uuid.uuid4()))
    assert r.status_code == 202, r.text
    assert r.json()["dead_lettered"]
    [record] = consume(kafka_bootstrap, f"{prefix}.dlq", expect=1)
    letter = orjson.loads(record.value)
    assert letter["body"] == "{not json"
    assert letter["connector_id"] == "github-main"
    headers = dict(record.headers)
    assert headers["event-type"] == b"gateway.dead_letter"
    assert headers["content-type"] == b"application/json"
    assert "ce_id" not in headers
    assert "traceparent" in headers
