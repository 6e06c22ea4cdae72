"""``kafka.schema_registry``: values in the registry wire format, read back from a real
broker with Confluent's ``SchemaRegistryClient`` and ``JSONDeserializer`` against a real
registry (Apicurio's Confluent-compatible API); a registry that is down makes records
wait, never lose them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from devtools.kafka.runtime import listener_ports
from devtools.registry import LocalRegistry
from gateway.kafka_settings import SchemaRegistryConfig
from gateway.schema_registry import subject
from tests.helpers import (
    ROOT,
    ThreadServer,
    accepted_github,
    base_config,
    consume,
    thread_server,
    write_config,
)

SECRET = "registry-github-secret"
pytestmark = pytest.mark.kafka


def deliver(server: ThreadServer, connector: str, body: bytes) -> str:
    return accepted_github(server.url, connector, body, SECRET)


def decode(registry: str, topic: str, value: bytes) -> Any:
    """What a registry-aware consumer reads: Confluent's deserializer, the writer's schema
    fetched by the id in the frame, the value validated against it."""
    with SchemaRegistryClient({"url": registry}) as client:
        deserialize = JSONDeserializer(None, schema_registry_client=client,
                                       conf={"subject.name.strategy.type": "TOPIC"})
        return deserialize(value, SerializationContext(topic, MessageField.VALUE))


def gateway_config(kafka_bootstrap: str, data_dir: Path, prefix: str,
                   registry: str) -> dict[str, Any]:
    cfg = base_config(kafka_bootstrap, data_dir, f"{prefix}.{{source}}")
    cfg["kafka"]["schema_registry"] = {"url": registry}
    cfg["kafka"]["topics"] = [
        {"name": f"{prefix}.structured", "format": "cloudevents-structured"},
        {"name": f"{prefix}.binary", "format": "cloudevents-binary"}]
    cfg["connectors"] = {
        "github-main": {"type": "github", "config": {"secret": SECRET}},
        "github-structured": {"type": "github", "config": {
            "secret": SECRET, "topic": f"{prefix}.structured"}},
        "github-binary": {"type": "github", "config": {
            "secret": SECRET, "topic": f"{prefix}.binary"}},
    }
    return cfg


@pytest.fixture
def gateway(kafka_bootstrap: str, data_dir: Path, topic_prefix: str, registry: str,
            tmp_path: Path) -> Iterator[ThreadServer]:
    cfg = gateway_config(kafka_bootstrap, data_dir, topic_prefix, registry)
    with thread_server(write_config(tmp_path / "gateway.yaml", cfg)) as server:
        yield server


def test_every_format_is_read_by_confluents_json_deserializer(
        gateway: ThreadServer, kafka_bootstrap: str, topic_prefix: str, registry: str,
        pull_request_body: bytes) -> None:
    payload = orjson.loads(pull_request_body)
    ids = {c: deliver(gateway, c, pull_request_body)
           for c in ("github-main", "github-structured", "github-binary")}

    topic = f"{topic_prefix}.github"
    [record] = consume(kafka_bootstrap, topic, expect=1)
    assert record.value[:1] == b"\x00"
    envelope = decode(registry, topic, record.value)
    assert envelope["id"] == ids["github-main"]
    assert envelope["payload"] == payload
    assert orjson.loads(record.value[5:]) == envelope  # the JSON follows the 5-byte frame

    topic = f"{topic_prefix}.structured"
    [record] = consume(kafka_bootstrap, topic, expect=1)
    event = decode(registry, topic, record.value)
    assert event["id"] == ids["github-structured"]
    assert event["data"] == payload
    assert dict(record.headers)["content-type"] == b"application/cloudevents+json"

    topic = f"{topic_prefix}.binary"
    [record] = consume(kafka_bootstrap, topic, expect=1)
    assert decode(registry, topic, record.value) == payload
    assert dict(record.headers)["ce_id"] == ids["github-binary"].encode()

    # TopicNameStrategy: one subject per topic, holding the schema of its format
    with SchemaRegistryClient({"url": registry}) as client:
        titles = {t: orjson.loads(client.get_latest_version(f"{topic_prefix}.{t}-value")
                                  .schema.schema_str or "{}")["title"]
                  for t in ("github", "structured", "binary")}
    assert titles == {"github": "Envelope", "structured": "CloudEvent", "binary": "Payload"}


def test_dead_letters_are_not_framed(gateway: ThreadServer, kafka_bootstrap: str,
                                     topic_prefix: str) -> None:
    deliver(gateway, "github-main", b"{not json")
    [record] = consume(kafka_bootstrap, f"{topic_prefix}.dlq", expect=1)
    assert orjson.loads(record.value)["body"] == "{not json"


def test_check_config_connect_reaches_the_registry(
        kafka_bootstrap: str, data_dir: Path, topic_prefix: str, registry: str,
        tmp_path: Path) -> None:
    """``gateway check-config --connect`` says whether the registry answers."""
    [dead] = listener_ports(1)
    for url, code, said in ((registry, 0, "ok: schema registry at"),
                            (f"http://127.0.0.1:{dead}/apis/ccompat/v7", 3,
                             "cannot use the schema registry")):
        cfg = gateway_config(kafka_bootstrap, data_dir, topic_prefix, url)
        path = write_config(tmp_path / "gateway.yaml", cfg)
        out = subprocess.run([sys.executable, "-m", "gateway", "check-config", "--connect",
                              "--config", str(path)], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == code, out.stdout + out.stderr
        assert said in out.stdout + out.stderr


def test_subject_strategies() -> None:
    assert subject("topic", "events.github", "Envelope") == "events.github-value"
    assert subject("record", "events.github", "Envelope") == "Envelope"
    assert subject("topic_record", "events.github", "Envelope") == "events.github-Envelope"


def test_credentials_go_only_over_https_and_never_in_the_url() -> None:
    with pytest.raises(ValueError, match="only over https"):
        SchemaRegistryConfig(url="http://registry.example:8081",
                             bearer_token="t0ken-value")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not in the URL"):
        SchemaRegistryConfig(url="https://user:pw@registry.example")
    SchemaRegistryConfig(url="http://127.0.0.1:8081",
                         basic_auth={"username": "u", "password": "p"})  # type: ignore[arg-type]


@pytest.mark.slow
def test_while_the_registry_is_down_events_wait_then_go(
        kafka_bootstrap: str, data_dir: Path, topic_prefix: str, tmp_path: Path,
        pull_request_body: bytes) -> None:
    """2xx answers stay durable and publication waits, as for Kafka: nothing is
    published unframed, nothing is lost, and order holds once the registry answers."""
    [port] = listener_ports(1)
    url = f"http://127.0.0.1:{port}/apis/ccompat/v7"
    cfg = gateway_config(kafka_bootstrap, data_dir, topic_prefix, url)
    topic = f"{topic_prefix}.github"
    with thread_server(write_config(tmp_path / "gateway.yaml", cfg)) as server:
        sent = [deliver(server, "github-main", pull_request_body.replace(
            b'"number": 1347', b'"number": %d' % n)) for n in range(3)]
        assert consume(kafka_bootstrap, topic, timeout=4) == []  # nothing unframed
        with LocalRegistry(port=port) as registry:
            registry.start()
            records = consume(kafka_bootstrap, topic, expect=3, timeout=30)
            assert [decode(registry.url, topic, r.value)["id"] for r in records] == sent
        lines = server.wait_audit(lambda line: line["outcome"] == "published")
        assert sorted(i for line in lines for i in line["event_ids"]) == sorted(sent)
