"""``devtools.asyncapi.problems`` validates against the vendored official AsyncAPI 3.0.0
JSON Schema, offline, with readable messages."""

from __future__ import annotations

import copy
import hashlib
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

import devtools.asyncapi
from devtools.asyncapi import SCHEMA_PATH, problems


def kafka_document() -> dict[str, Any]:
    """A minimal valid AsyncAPI 3.0.0 document for a Kafka topic."""
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Event gateway", "version": "0.1.0"},
        "defaultContentType": "application/json",
        "servers": {
            "local": {"host": "localhost:9092", "protocol": "kafka"},
        },
        "channels": {
            "events": {
                "address": "events.github",
                "messages": {
                    "envelope": {
                        "name": "Envelope",
                        "contentType": "application/json",
                        "payload": {
                            "type": "object",
                            "required": ["id", "source"],
                            "properties": {
                                "id": {"type": "string"},
                                "source": {"type": "string"},
                            },
                        },
                        "bindings": {
                            "kafka": {"key": {"type": "string"}, "bindingVersion": "0.5.0"},
                        },
                    },
                },
            },
        },
        "operations": {
            "publishEvents": {
                "action": "send",
                "channel": {"$ref": "#/channels/events"},
                "messages": [{"$ref": "#/channels/events/messages/envelope"}],
            },
        },
    }


def changed(edit: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    document = copy.deepcopy(kafka_document())
    edit(document)
    return document


def envelope(document: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = document["channels"]["events"]["messages"]["envelope"]
    return message


def test_the_vendored_schema_is_the_one_the_docstring_names() -> None:
    doc = devtools.asyncapi.__doc__ or ""
    named = re.search(r"sha256 ``([0-9a-f]{64})``", doc)
    assert named is not None, "the module docstring names the schema file's sha256"
    assert hashlib.sha256(SCHEMA_PATH.read_bytes()).hexdigest() == named.group(1)


def test_a_minimal_kafka_document_is_valid() -> None:
    assert problems(kafka_document()) == []


def test_validation_is_fast_once_loaded() -> None:
    problems(kafka_document())
    started = time.perf_counter()
    for _ in range(20):
        problems(kafka_document())
    assert (time.perf_counter() - started) / 20 < 0.05


@pytest.mark.parametrize(("edit", "expected"), [
    pytest.param(lambda d: d["info"].pop("title"),
                 ["$.info: 'title' is a required property"], id="no info.title"),
    pytest.param(lambda d: d.update(asyncapi="2.6.0"),
                 ["$.asyncapi: '3.0.0' was expected"], id="asyncapi 2.6.0"),
    pytest.param(lambda d: d["operations"]["publishEvents"].update(action="publish"),
                 ["$.operations.publishEvents.action: 'publish' is not one of "
                  "['send', 'receive']"], id="v2 action publish"),
    pytest.param(lambda d: d["servers"]["local"].pop("protocol"),
                 ["$.servers.local: 'protocol' is a required property"], id="no protocol"),
    pytest.param(lambda d: d["operations"]["publishEvents"].update(
                     channel=d["channels"]["events"]),
                 ["$.operations.publishEvents.channel: '$ref' is a required property"],
                 id="operation channel given inline"),
    pytest.param(lambda d: envelope(d)["payload"]["properties"]["id"].update(type="str"),
                 ["$.channels.events.messages.envelope.payload.properties.id.type: "
                  "'str' is not valid under any of the given schemas"],
                 id="payload is not a JSON schema"),
    pytest.param(lambda d: envelope(d)["bindings"]["kafka"].update(partitions=3),
                 ["$.channels.events.messages.envelope.bindings.kafka: 'partitions' does not "
                  "match any of the regexes: '^x-"],
                 id="channel binding field in the message binding"),
    pytest.param(lambda d: d.update(topics={}),
                 ["$: 'topics' does not match any of the regexes: '^x-"],
                 id="unknown top-level field"),
])
def test_a_broken_document_fails_with_a_readable_message(
        edit: Callable[[dict[str, Any]], object], expected: list[str]) -> None:
    """Each problem is one line, the JSON path and jsonschema's message (``expected``
    gives its start: the regex is shown with its backslashes doubled)."""
    found = problems(changed(edit))
    assert len(found) == len(expected), found
    for line, start in zip(found, expected, strict=True):
        assert line.startswith(start), found


def test_every_problem_is_reported() -> None:
    def edit(d: dict[str, Any]) -> None:
        d["info"].pop("title")
        d["operations"]["publishEvents"]["action"] = "publish"

    assert problems(changed(edit)) == [
        "$.info: 'title' is a required property",
        "$.operations.publishEvents.action: 'publish' is not one of ['send', 'receive']",
    ]


def test_a_payload_may_be_a_multi_format_schema() -> None:
    def edit(d: dict[str, Any]) -> None:
        envelope(d)["payload"] = {
            "schemaFormat": "application/schema+json;version=draft-07",
            "schema": {"type": "object", "properties": {"id": {"type": "string"}}},
        }

    assert problems(changed(edit)) == []
    broken = changed(edit)
    envelope(broken)["payload"]["schema"]["type"] = 7
    assert problems(broken) == [
        "$.channels.events.messages.envelope.payload.schema.type: "
        "7 is not valid under any of the given schemas"]


def test_components_schemas_hold_draft_07_schemas_referenced_by_payloads() -> None:
    def edit(d: dict[str, Any]) -> None:
        d["components"] = {"schemas": {"Envelope": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"id": {"$ref": "#/definitions/id"}},
            "definitions": {"id": {"type": "string", "format": "uuid"}},
        }}}
        envelope(d)["payload"] = {"$ref": "#/components/schemas/Envelope"}

    assert problems(changed(edit)) == []


def test_references_are_not_resolved() -> None:
    """The schema checks that a reference is ``{"$ref": <string>}``, not that it points at
    anything: a dangling channel reference passes."""
    dangling = changed(lambda d: d["operations"]["publishEvents"].update(
        channel={"$ref": "#/channels/nowhere"}))
    assert problems(dangling) == []
