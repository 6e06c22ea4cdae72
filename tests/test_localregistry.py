"""The local Schema Registry (Apicurio, devtools.registry) as Confluent's clients see it."""

from __future__ import annotations

import json
import struct
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

from devtools.registry import LocalRegistry

EVENT_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Event",
    "type": "object",
    "properties": {"id": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["id"],
}


def register(url: str, subject: str, schema: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/subjects/{subject}/versions",
                      json={"schemaType": "JSON", "schema": json.dumps(schema)})


def framed(schema_id: int, value: object) -> bytes:
    """Confluent's wire format: magic byte 0, the schema id (4 bytes, big-endian), JSON."""
    return b"\x00" + struct.pack(">I", schema_id) + json.dumps(value).encode()


def test_a_registered_json_schema_reads_back_through_confluents_client(
        registry: str, topic_prefix: str) -> None:
    subject = f"{topic_prefix}-value"
    response = register(registry, subject, EVENT_SCHEMA)
    assert response.status_code == 200, response.text
    schema_id = response.json()["id"]
    assert register(registry, subject, EVENT_SCHEMA).json()["id"] == schema_id  # same content

    with SchemaRegistryClient({"url": registry}) as client:  # else: unclosed sockets
        latest = client.get_latest_version(subject)
        by_id = client.get_schema(schema_id)
        subjects = client.get_subjects()
    assert (latest.schema_id, latest.subject, latest.version) == (schema_id, subject, 1)
    assert latest.schema.schema_type == "JSON"
    assert latest.schema.schema_str is not None
    assert json.loads(latest.schema.schema_str) == EVENT_SCHEMA
    assert by_id.schema_type == "JSON"
    assert by_id.schema_str == latest.schema.schema_str
    assert subject in subjects


def test_confluents_json_deserializer_decodes_a_framed_value(
        registry: str, topic_prefix: str) -> None:
    schema_id = register(registry, f"{topic_prefix}-value", EVENT_SCHEMA).json()["id"]
    # No schema_str: the writer's schema comes from the registry by the id in the frame.
    # The default subject strategy (ASSOCIATED) asks for /associations, which Apicurio
    # answers 404 (then: TOPIC); it and TOPIC need a SerializationContext.
    ctx = SerializationContext(topic_prefix, MessageField.VALUE)
    with SchemaRegistryClient({"url": registry}) as client:
        deserialize = JSONDeserializer(None, schema_registry_client=client,
                                       conf={"subject.name.strategy.type": "TOPIC"})
        value: object = deserialize(framed(schema_id, {"id": "e1", "n": 2}), ctx)
        assert value == {"id": "e1", "n": 2}
        with pytest.raises(SerializationError, match="is not of type 'integer'"):
            deserialize(framed(schema_id, {"id": "e1", "n": "two"}), ctx)


def test_apicurio_takes_a_bare_json_schema_only_with_schema_or_properties(
        registry: str, topic_prefix: str) -> None:
    """Apicurio's content check: ``{"type": "string"}`` (a typical key schema) is not
    JSON Schema to it (422); with ``$schema`` it is."""
    bare = register(registry, f"{topic_prefix}-key", {"type": "string"})
    assert bare.status_code == 422
    assert bare.json()["error_code"] == 42201
    dialect = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "string"}
    assert register(registry, f"{topic_prefix}-key", dialect).status_code == 200


def test_close_stops_the_jvm_and_deletes_its_directory() -> None:
    registry = LocalRegistry()
    url = registry.start()
    proc = registry.proc
    assert proc is not None
    assert httpx.get(f"{url}/subjects").json() == []
    registry.close()
    assert proc.poll() is not None
    assert not registry.running
    assert not registry.dir.exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/subjects")
