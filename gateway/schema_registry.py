"""Values in a Schema Registry's wire format, when ``kafka.schema_registry`` is set.

Before the relay sends a topic's first record of a kind, the kind's JSON Schema is
registered (``POST /subjects/<subject>/versions``, ``schemaType: JSON``; registering an
existing schema again returns its id), and every record's value goes out as Confluent's
serializers write it: magic byte 0, the schema id (4 bytes, big-endian), then the JSON. So
``JSONDeserializer`` and other registry-aware consumers read it.

The schemas: the envelope's (``schema/envelope.schema.json``), the CloudEvent's in
structured mode, and in binary mode (where the value is the payload) an object. Subjects
follow ``subject_strategy``: ``<topic>-value``, ``<record name>`` or
``<topic>-<record name>``. Dead letters keep their own, unframed format.

A registry that cannot be reached (or refuses the schema) makes the records of that
topic wait, as a Kafka outage does: they stay in the buffer, in order, and go once it
answers. Ids are cached for the process; the registry is asked once per subject.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import orjson

from gateway.buffer.codec import CLOUDEVENTS_BINARY, CLOUDEVENTS_STRUCTURED, ENVELOPE
from gateway.envelope import json_schema
from gateway.formats import CLOUDEVENT_SCHEMA
from gateway.kafka_settings import SchemaRegistryConfig

MAGIC = b"\x00"
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

DRAFT_07 = "http://json-schema.org/draft-07/schema#"
# kind -> (record name, schema). The envelope's schema uses nothing past draft-07, the
# draft Confluent's serdes use (and registries check compatibility for).
SCHEMAS: dict[str, tuple[str, dict[str, Any]]] = {
    ENVELOPE: ("Envelope", {**json_schema(), "$schema": DRAFT_07, "title": "Envelope"}),
    CLOUDEVENTS_STRUCTURED: ("CloudEvent", CLOUDEVENT_SCHEMA),
    CLOUDEVENTS_BINARY: ("Payload", {
        "$schema": DRAFT_07, "title": "Payload",
        "description": "The source's event: the data of a CloudEvent in binary mode (its"
                       " attributes are in the record's ce_ headers).", "type": "object"}),
}


class RegistryUnavailable(Exception):
    """The registry could not be reached or did not register the schema: records wait."""


def subject(strategy: str, topic: str, record_name: str) -> str:
    if strategy == "topic":
        return f"{topic}-value"
    if strategy == "record":
        return record_name
    return f"{topic}-{record_name}"


def frame(schema_id: int, value: bytes) -> bytes:
    """``value`` in the registry wire format."""
    return MAGIC + schema_id.to_bytes(4, "big") + value


class SchemaRegistry:
    def __init__(self, config: SchemaRegistryConfig) -> None:
        self.config = config
        headers = {"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE}
        if config.bearer_token is not None:
            headers["Authorization"] = f"Bearer {config.bearer_token.get_secret_value()}"
        auth = (httpx.BasicAuth(config.basic_auth.username,
                                config.basic_auth.password.get_secret_value())
                if config.basic_auth is not None else None)
        # No redirects: credentials never follow to another host.
        self._http = httpx.AsyncClient(base_url=config.url, headers=headers, auth=auth,
                                       timeout=config.timeout_seconds, follow_redirects=False)
        self._ids: dict[tuple[str, str], int] = {}  # (topic, kind) -> schema id

    async def schema_id(self, topic: str, kind: str) -> int:
        """The id of ``kind``'s schema under ``topic``'s subject (registered on first use).
        Raises RegistryUnavailable."""
        found = self._ids.get((topic, kind))
        if found is not None:
            return found
        name, schema = SCHEMAS[kind]
        where = subject(self.config.subject_strategy, topic, name)
        try:
            response = await self._http.post(
                f"/subjects/{quote(where, safe='')}/versions",
                content=orjson.dumps({"schemaType": "JSON", "schema": orjson.dumps(
                    schema, option=orjson.OPT_SORT_KEYS).decode()}))
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(f"{type(exc).__name__} from {self.config.url}") from None
        if response.status_code != 200:
            raise RegistryUnavailable(
                f"registering subject {where!r}: HTTP {response.status_code} "
                f"{_message(response)}")
        try:
            schema_id = int(response.json()["id"])
        except (ValueError, KeyError, TypeError):
            raise RegistryUnavailable(f"registering subject {where!r}: no id in the"
                                      " answer") from None
        if len(self._ids) < 10_000:
            self._ids[(topic, kind)] = schema_id
        return schema_id

    async def subjects(self) -> int:
        """How many subjects the registry holds: proof it answers and takes our
        credentials (``check-config --connect``). Raises RegistryUnavailable."""
        try:
            response = await self._http.get("/subjects")
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(f"{type(exc).__name__} from {self.config.url}") from None
        if response.status_code != 200:
            raise RegistryUnavailable(f"HTTP {response.status_code} {_message(response)}")
        try:
            return len(response.json())
        except (ValueError, TypeError):
            raise RegistryUnavailable("the answer is not a list of subjects") from None

    async def aclose(self) -> None:
        await self._http.aclose()


def _message(response: httpx.Response) -> str:
    """The registry's own error message, bounded (it never holds our credentials)."""
    try:
        return str(response.json().get("message", ""))[:200]
    except (ValueError, AttributeError):
        return ""
