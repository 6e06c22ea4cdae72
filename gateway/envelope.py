"""The envelope every Kafka consumer reads, and the records that carry it.

The pydantic model is the one source of truth: the pipeline builds records from it and
``schema/envelope.schema.json`` is generated from it (``python -m devtools.schema``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_serializer

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema" / "envelope.schema.json"


def rfc3339(value: datetime) -> str:
    """RFC 3339 UTC with a ``Z``, milliseconds kept when present."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    if value.microsecond:
        return value.isoformat(timespec="milliseconds")[:-6] + "Z"
    return value.isoformat(timespec="seconds")[:-6] + "Z"


class PiiHandled(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str = Field(description="A JSON path into the payload, e.g. $.customer.email.")
    handling: Literal["mask", "hash", "encrypt", "exclude"]


class Envelope(BaseModel):
    """One normalized event, whatever its source."""

    model_config = ConfigDict(
        frozen=True,
        title="Event envelope",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    id: str = Field(description="Unique per event; the same for every redelivery of the "
                    "same source delivery.", min_length=1)
    source: str = Field(description="Provider slug, e.g. github.", min_length=1)
    type: str = Field(description="Dotted event type, e.g. pull_request.opened.", min_length=1)
    timestamp: datetime = Field(description="RFC 3339 UTC: when it happened at the source, "
                                "else when received.")
    connector_id: str = Field(description="The configured connector id.", min_length=1)
    received_at: datetime = Field(description="RFC 3339 UTC: when the gateway accepted it.")
    payload: dict[str, Any] = Field(description="The source's event; form bodies become "
                                    "an object of fields.")
    pii: list[PiiHandled] | None = Field(
        default=None, description="Present when the connector's governance names personal"
        " data: each path and how it was handled (mask, hash, encrypt, exclude) before the"
        " event was stored; whether or not the path occurred in this payload.")

    @field_serializer("timestamp", "received_at")
    def _utc(self, value: datetime) -> str:
        return rfc3339(value)

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(exclude={"pii"} if self.pii is None else None))


FIELDS = tuple(Envelope.model_fields)
assert FIELDS == ("id", "source", "type", "timestamp", "connector_id", "received_at",
                  "payload", "pii"), "encode_envelope must follow the Envelope model"


def encode_envelope(*, id: str, source: str, type: str, timestamp: datetime,
                    connector_id: str, received_at: datetime, payload: dict[str, Any],
                    raw_payload: bytes | None = None,
                    pii: list[dict[str, str]] | None = None) -> bytes:
    """The bytes ``Envelope(...).to_json()`` gives, without per-event model validation
    (the request path's inputs are already typed; a test pins the two together).

    ``raw_payload``: the payload's JSON exactly as received (already parsed once, so
    valid), embedded instead of serialized again. ``pii``: the handled paths, when the
    connector's governance names any.
    """
    received = rfc3339(received_at)
    fields: dict[str, Any] = {"id": id, "source": source, "type": type,
              "timestamp": received if timestamp is received_at else rfc3339(timestamp),
              "connector_id": connector_id, "received_at": received,
              "payload": payload if raw_payload is None else orjson.Fragment(raw_payload)}
    if pii is not None:
        fields["pii"] = pii
    return orjson.dumps(fields)


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with every ``#/$defs/...`` reference replaced by the definition."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref[len("#/$defs/"):]], defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def json_schema() -> dict[str, Any]:
    """Self-contained (no ``$defs``): it is embedded in AsyncAPI documents and registered
    with schema registries, where a reference into it would point nowhere."""
    generated = Envelope.model_json_schema(mode="serialization")
    schema: dict[str, Any] = _inline(generated, generated.pop("$defs", {}))
    for name in ("timestamp", "received_at"):
        schema["properties"][name].update(format="date-time", pattern=r"Z$")
    return schema


def schema_text() -> str:
    return orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
                        ).decode() + "\n"


_TOPIC_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def topic_for(template: str, *, source: str, type: str, connector_id: str) -> str:
    """Expand ``{source}`` ``{type}`` ``{connector_id}``; Kafka allows [A-Za-z0-9._-]."""
    name = template.replace("{source}", source).replace("{type}", type).replace(
        "{connector_id}", connector_id)
    return _TOPIC_UNSAFE.sub("_", name)[:249]
