"""The records a segment holds, and the blob they are stored as.

A group commit stores all its records in one ``BLOB`` (``pack``): per record its seven
field lengths, then the seven fields. The relay reads them back with ``unpack``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple


class Record(NamedTuple):
    """One Kafka record to be: where it goes, what it carries, what its headers say.
    (A named tuple: built once per event, it costs half a frozen dataclass.)"""

    topic: str
    key: bytes
    value: bytes
    event_id: str
    connector_id: str
    event_type: str
    source: str

    def headers(self) -> list[tuple[str, bytes]]:
        return [("content-type", b"application/json"), ("event-id", self.event_id.encode()),
                ("event-type", self.event_type.encode()),
                ("event-source", self.source.encode()),
                ("connector-id", self.connector_id.encode())]


_LENGTHS = struct.Struct("!7I")


def pack(records: Sequence[Record]) -> bytes:
    """Records as one blob: per record its seven field lengths, then the seven fields."""
    parts: list[bytes] = []
    for r in records:
        fields = (r.topic.encode(), r.key, r.value, r.event_id.encode(),
                  r.connector_id.encode(), r.event_type.encode(), r.source.encode())
        parts.append(_LENGTHS.pack(*map(len, fields)))
        parts.extend(fields)
    return b"".join(parts)


def unpack(blob: bytes) -> list[Record]:
    out = []
    pos = 0
    while pos < len(blob):
        lengths = _LENGTHS.unpack_from(blob, pos)
        pos += _LENGTHS.size
        f = []
        for n in lengths:
            f.append(blob[pos:pos + n])
            pos += n
        out.append(Record(f[0].decode(), f[1], f[2], f[3].decode(), f[4].decode(),
                          f[5].decode(), f[6].decode()))
    return out
