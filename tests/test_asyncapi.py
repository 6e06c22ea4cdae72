"""``gateway asyncapi``: the document validates against the official AsyncAPI 3.0.0
schema, every ``$ref`` in it resolves, it follows the configuration (formats, templates,
allow-lists, security), and the checked-in one for the example configuration is current."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml

from devtools.asyncapi import problems
from gateway.asyncapi import document
from gateway.config import load_config
from gateway.envelope import Envelope
from tests.helpers import ROOT, write_config

EXAMPLE = ROOT / "config" / "gateway.yaml"
CHECKED_IN = ROOT / "docs" / "asyncapi.yaml"


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def unresolved(doc: dict[str, Any]) -> list[str]:
    """Every local ``$ref`` that points at nothing (the schema only checks the shape)."""
    missing: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                try:
                    resolve(doc, ref)
                except (KeyError, TypeError, AssertionError):
                    missing.append(ref)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    return missing


def generated(path: Path) -> dict[str, Any]:
    return document(load_config(path, env={}, allow_placeholders=True))


def test_the_example_document_is_valid_and_checked_in_current() -> None:
    doc = generated(EXAMPLE)
    assert problems(doc) == []
    assert unresolved(doc) == []
    assert yaml.safe_load(CHECKED_IN.read_text()) == doc, (
        "docs/asyncapi.yaml is stale: env -u KAFKA_BOOTSTRAP_SERVERS gateway asyncapi"
        " --config config/gateway.yaml > docs/asyncapi.yaml")


def test_the_cli_prints_the_same_document(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "gateway", "asyncapi", "--config",
                          str(EXAMPLE), "--json"], cwd=ROOT, capture_output=True,
                         timeout=60, check=True, env={"PATH": "/usr/bin:/bin"})
    assert orjson.loads(out.stdout) == generated(EXAMPLE)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "gateway.yaml", {
        "kafka": {
            "bootstrap_servers": "b1:9093,b2:9093", "topic": "events.{source}",
            "format": "cloudevents-binary", "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "gw",
            "sasl_plain_password": "pw-not-a-placeholder-1",
            "topics": [{"name": "orders.structured", "format": "cloudevents-structured"},
                       {"pattern": "legacy.*", "format": "envelope"}]},
        "connectors": {
            "gh": {"type": "github", "config": {"secret": "s" * 24,
                                                "events": ["push", "pull_request"]}},
            "shop": {"type": "github", "config": {"secret": "s" * 24,
                                                  "topic": "orders.structured"}},
            "old": {"type": "github", "config": {"secret": "s" * 24,
                                                 "topic": "legacy.{type}"}},
            "ingest": {"type": "push", "config": {"secret": "t" * 32},
                       "acl": {"sources": ["app-*"]}},  # patterns: named per event
            "jobs": {"type": "push", "config": {"secret": "j" * 32}},  # its own id
        }})


def test_the_document_follows_formats_templates_allow_lists_and_security(
        config: Path) -> None:
    doc = generated(config)
    assert problems(doc) == []
    assert unresolved(doc) == []
    by_address = {c["address"]: c for c in doc["channels"].values()}

    binary = by_address["events.github"]["messages"]["gh"]
    assert resolve(doc, binary["headers"]["$ref"])["properties"]["ce_specversion"] == {
        "const": "1.0"}
    assert "push, pull_request" in binary["payload"]["description"] or (
        "pull_request, push" in binary["payload"]["description"])

    structured = by_address["orders.structured"]["messages"]["shop"]
    assert structured["contentType"] == "application/cloudevents+json"
    assert structured["payload"]["allOf"][0] == {"$ref": "#/components/schemas/CloudEvent"}

    legacy = by_address["legacy.{type}"]
    assert set(legacy["parameters"]) == {"type"}  # a template becomes a parameter
    assert legacy["messages"]["old"]["payload"]["allOf"][0] == {
        "$ref": "#/components/schemas/Envelope"}

    pushed = by_address["events.{source}"]  # a push source names its own source
    assert set(pushed["parameters"]) == {"source"}
    assert "ingest" in pushed["messages"]
    assert "jobs" in by_address["events.jobs"]["messages"]  # the ACL's narrow default
    assert "events.dlq" in by_address

    assert [s["host"] for s in doc["servers"].values()] == ["b1:9093", "b2:9093"]
    assert {s["protocol"] for s in doc["servers"].values()} == {"kafka-secure"}
    assert doc["components"]["securitySchemes"] == {"sasl": {"type": "scramSha512"}}
    assert b"pw-not-a-placeholder-1" not in orjson.dumps(doc)

    # every channel has its operation, and what it sends is what the channel holds
    for key, channel in doc["channels"].items():
        [op] = [o for o in doc["operations"].values() if o["channel"]["$ref"] ==
                f"#/channels/{key}"]
        assert len(op["messages"]) == len(channel["messages"])


def test_an_envelope_on_kafka_validates_against_the_documented_message(config: Path) -> None:
    """The message schema is the envelope's own, bound to the connector and its types."""
    doc = generated(config)
    message = next(c for c in doc["channels"].values()
                   if c["address"] == "legacy.{type}")["messages"]["old"]
    schema = {"allOf": message["payload"]["allOf"],
              "components": doc["components"]}
    schema["allOf"][0] = {"$ref": "#/components/schemas/Envelope"}
    envelope = orjson.loads(Envelope(
        id="e1", source="github", type="push", timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        connector_id="old", received_at=datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
        payload={}).to_json())
    jsonschema.validate(envelope, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**envelope, "connector_id": "other"}, schema)
