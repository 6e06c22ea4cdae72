"""The records a segment holds, and the blob they are stored as.

A group commit stores all its records in one ``BLOB`` (``pack``): a version byte (1),
then per record its nine field lengths and the nine fields. The relay reads them back
with ``unpack``, which also reads the blobs of earlier versions (no version byte: seven
fields, the envelope format, no extra headers), so a buffer left by an older gateway is
still published after an upgrade.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

import orjson

Headers = tuple[tuple[str, bytes], ...]

ENVELOPE = "envelope"
DEAD_LETTER = "dead_letter"
CLOUDEVENTS_BINARY = "cloudevents-binary"
CLOUDEVENTS_STRUCTURED = "cloudevents-structured"
_OWN_HEADERS = frozenset({ENVELOPE, DEAD_LETTER})  # kinds that carry the gateway's headers
TRACE_HEADERS = frozenset({"traceparent", "tracestate"})


class Record(NamedTuple):
    """One Kafka record to be: where it goes, what it carries, what its headers say.
    (A named tuple: built once per event, it costs half a frozen dataclass.)

    ``kind`` says what the value is: an ``envelope`` or a ``dead_letter`` (headers: the
    gateway's five, then ``extra``), or a CloudEvent in binary or structured mode (its
    headers are ``extra`` alone, as the CloudEvents Kafka binding sets them). ``extra``
    also carries the trace context (``traceparent``, ``tracestate``)."""

    topic: str
    key: bytes
    value: bytes
    event_id: str
    connector_id: str
    event_type: str
    source: str
    kind: str = ENVELOPE
    extra: Headers = ()

    def headers(self) -> list[tuple[str, bytes]]:
        if self.kind not in _OWN_HEADERS:
            return list(self.extra)
        return [("content-type", b"application/json"), ("event-id", self.event_id.encode()),
                ("event-type", self.event_type.encode()),
                ("event-source", self.source.encode()),
                ("connector-id", self.connector_id.encode()), *self.extra]


_VERSION = b"\x01"
_LENGTHS = struct.Struct("!9I")
_LENGTHS_V0 = struct.Struct("!7I")


def _pack_headers(headers: Headers) -> bytes:
    return orjson.dumps([(name, value.decode()) for name, value in headers]) if headers else b""


def _unpack_headers(data: bytes) -> Headers:
    return tuple((name, value.encode()) for name, value in orjson.loads(data)) if data else ()


def pack(records: Sequence[Record]) -> bytes:
    """Records as one blob: the version, then per record its nine field lengths and the
    nine fields."""
    parts: list[bytes] = [_VERSION]
    for r in records:
        fields = (r.topic.encode(), r.key, r.value, r.event_id.encode(),
                  r.connector_id.encode(), r.event_type.encode(), r.source.encode(),
                  r.kind.encode(), _pack_headers(r.extra))
        parts.append(_LENGTHS.pack(*map(len, fields)))
        parts.extend(fields)
    return b"".join(parts)


def unpack(blob: bytes) -> list[Record]:
    version1 = blob[:1] == _VERSION  # a version 0 blob starts with a length's high byte: 0
    lengths_of = _LENGTHS if version1 else _LENGTHS_V0
    out = []
    pos = 1 if version1 else 0
    while pos < len(blob):
        lengths = lengths_of.unpack_from(blob, pos)
        pos += lengths_of.size
        f = []
        for n in lengths:
            f.append(blob[pos:pos + n])
            pos += n
        if version1:
            out.append(Record(f[0].decode(), f[1], f[2], f[3].decode(), f[4].decode(),
                              f[5].decode(), f[6].decode(), f[7].decode(),
                              _unpack_headers(f[8])))
        else:
            out.append(Record(f[0].decode(), f[1], f[2], f[3].decode(), f[4].decode(),
                              f[5].decode(), f[6].decode()))
    return out
