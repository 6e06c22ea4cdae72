"""What a record's value and headers are, per ``kafka.format``.

- ``envelope`` (the default): the envelope as JSON (``gateway.envelope``) and the
  gateway's headers (``content-type``, ``event-id``, ``event-type``, ``event-source``,
  ``connector-id``).
- ``cloudevents-binary``: the CloudEvents Kafka protocol binding's binary content mode.
  The value is the payload (``content-type: application/json``); the attributes are
  headers: ``ce_specversion`` (1.0), ``ce_id``, ``ce_source``, ``ce_type``, ``ce_time``,
  and the extensions ``ce_connectorid``, ``ce_receivedat`` and ``ce_partitionkey``
  (the record key, as the binding maps it); ``ce_pii`` when the connector's governance
  names personal data (the handled paths as JSON text, as in the envelope's ``pii``).
- ``cloudevents-structured``: the binding's structured content mode. The value is the
  whole CloudEvent in the JSON event format (``content-type:
  application/cloudevents+json``), the payload under ``data``.

Either way the record key is the partition key, and the trace context headers
(``traceparent``, ``tracestate``) follow. Dead letters keep their own format
(``gateway.records``) whatever the topics' format.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.buffer.codec import Headers

SPECVERSION = "1.0"
STRUCTURED_CONTENT_TYPE = b"application/cloudevents+json"

_TEXT = {"type": "string", "minLength": 1}
_TIME = {"type": "string", "format": "date-time"}
# A structured-mode value: the JSON event format with this gateway's attributes.
CLOUDEVENT_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#", "title": "CloudEvent",
    "type": "object", "properties": {
        "specversion": {"const": SPECVERSION}, "id": _TEXT, "source": _TEXT, "type": _TEXT,
        "time": _TIME, "datacontenttype": {"const": "application/json"},
        "connectorid": _TEXT, "receivedat": _TIME, "partitionkey": _TEXT,
        "data": {"type": "object", "description": "the source's event"}},
    "required": ["specversion", "id", "source", "type", "time", "datacontenttype",
                 "connectorid", "receivedat", "partitionkey", "data"]}


def cloudevent_binary(*, id: str, source: str, type: str, time: str, connector_id: str,
                      received_at: str, key: bytes, payload: dict[str, Any],
                      raw: bytes | None, trace: Headers, pii: bytes | None = None
                      ) -> tuple[bytes, Headers]:
    """The value and headers of a CloudEvent in binary content mode."""
    value = raw if raw is not None else orjson.dumps(payload)
    return value, (("content-type", b"application/json"),
                   *((("ce_pii", pii),) if pii is not None else ()),
                   ("ce_specversion", SPECVERSION.encode()), ("ce_id", id.encode()),
                   ("ce_source", source.encode()), ("ce_type", type.encode()),
                   ("ce_time", time.encode()), ("ce_connectorid", connector_id.encode()),
                   ("ce_receivedat", received_at.encode()), ("ce_partitionkey", key),
                   *trace)


def cloudevent_structured(*, id: str, source: str, type: str, time: str, connector_id: str,
                          received_at: str, key: bytes, payload: dict[str, Any],
                          raw: bytes | None, trace: Headers, pii: bytes | None = None
                          ) -> tuple[bytes, Headers]:
    """The value and headers of a CloudEvent in structured content mode (JSON)."""
    value = orjson.dumps({
        **({"pii": pii.decode()} if pii is not None else {}),
        "specversion": SPECVERSION, "id": id, "source": source, "type": type, "time": time,
        "datacontenttype": "application/json", "connectorid": connector_id,
        "receivedat": received_at, "partitionkey": key.decode(),
        "data": orjson.Fragment(raw) if raw is not None else payload})
    return value, (("content-type", STRUCTURED_CONTENT_TYPE), *trace)
