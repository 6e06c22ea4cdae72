"""What a connector is: verify a request, turn it into events.

A connector declares what is static as class attributes (``source``, ``Config``) and
overrides only the hooks it needs. The pipeline calls, in order:

    handshake(request)   -> an answer for a provider's handshake, or None
    verify(request)      -> raises SignatureError unless authentic (raw bytes, constant time)
    delivery_id(request) -> the provider's stable delivery id, for ids and deduplication
    normalize(request)   -> events; raises Unnormalizable for authentic but unusable bodies
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from connectors.errors import Unnormalizable

_ID_NAMESPACE = uuid.UUID("6c1f3f3e-2d0b-4a59-9d7e-1f0c8d3b7a21")


_NS_BYTES = _ID_NAMESPACE.bytes


def event_id(connector_id: str, delivery_id: str, index: int = 0) -> str:
    """Deterministic event id: the same for every redelivery of the same source delivery.

    UUIDv5 (RFC 9562) of the connector id and the delivery id, computed with hashlib:
    equal to ``uuid.uuid5`` at a fraction of its cost.
    """
    name = f"{connector_id}\x00{delivery_id}" if index == 0 else (
        f"{connector_id}\x00{delivery_id}\x00{index}")
    x = hashlib.sha1(_NS_BYTES + name.encode()).hexdigest()  # noqa: S324 - UUIDv5 is SHA-1
    return (f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT[x[16]]}{x[17:20]}-{x[20:32]}")


_VARIANT = {c: "89ab"[int(c, 16) & 0x3] for c in "0123456789abcdef"}


_UNPARSED: Any = object()
_NOT_JSON: Any = object()


@dataclass(slots=True)
class InboundRequest:
    """One HTTP delivery as received, before anything is parsed."""

    method: str
    url: str
    headers: Mapping[str, str]  # keys lower-cased
    query: Mapping[str, str]
    body: bytes
    remote_addr: str | None
    received_at: datetime
    _parsed: Any = field(default=_UNPARSED, repr=False, compare=False)
    _sha256: str | None = field(default=None, repr=False, compare=False)

    def sha256(self) -> str:
        """The body's SHA-256 (hex), computed once per request."""
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(self.body).hexdigest()
        return self._sha256

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def _parse(self) -> Any:
        """The body parsed once per request, however many hooks look at it."""
        if self._parsed is _UNPARSED:
            try:
                self._parsed = orjson.loads(self.body)
            except orjson.JSONDecodeError:
                self._parsed = _NOT_JSON
        return self._parsed

    def json(self) -> Any:
        """The body as JSON; an authentic body that is not JSON is dead-lettered."""
        data = self._parse()
        if data is _NOT_JSON:
            raise Unnormalizable("body is not valid JSON")
        return data

    def json_or_none(self) -> Any:
        """The body as JSON, or None when it is not JSON (for hooks that only peek)."""
        data = self._parse()
        return None if data is _NOT_JSON else data

    def json_object(self) -> dict[str, Any]:
        data = self.json()
        if not isinstance(data, dict):
            raise Unnormalizable("body is not a JSON object")
        return data


@dataclass(slots=True)
class EventDraft:
    """A normalized event before the pipeline wraps it into the envelope."""

    type: str
    payload: dict[str, Any]
    timestamp: datetime | None = None
    key: str | None = None  # partition key; default the connector id
    raw: bytes | None = None  # the payload's exact JSON when it is the whole body, unchanged


@dataclass(frozen=True, slots=True)
class HandshakeReply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


class RateLimit(BaseModel):
    """Authentic deliveries accepted per second per worker process, with bursts up to
    ``burst`` (a token bucket); past it, 429 with ``Retry-After``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_second: float = Field(gt=0)
    burst: int | None = Field(default=None, ge=1)  # default: one second's worth

    @property
    def capacity(self) -> int:
        return self.burst if self.burst is not None else max(1, math.ceil(self.per_second))


class BasicAuth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1)
    password: SecretStr | None = None
    passwords: list[SecretStr] = Field(default_factory=list)  # rotation

    @model_validator(mode="after")
    def _need_password(self) -> BasicAuth:
        if self.password is None and not self.passwords:
            raise ValueError("basic_auth needs password or passwords")
        return self


class ApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    header: str | None = None
    query: str | None = None
    value: SecretStr | None = None
    values: list[SecretStr] = Field(default_factory=list)  # rotation

    @model_validator(mode="after")
    def _complete(self) -> ApiKey:
        if (self.header is None) == (self.query is None):
            raise ValueError("api_key needs exactly one of header and query")
        if self.value is None and not self.values:
            raise ValueError("api_key needs value or values")
        return self


def parse_networks(entries: list[str]
                   ) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR range") from None
    return out


class ConnectorConfig(BaseModel):
    """Options every connector takes where its scheme needs them (DESIGN.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: SecretStr | None = None
    secrets: list[SecretStr] = Field(default_factory=list)
    public_key: str | None = None
    tolerance_seconds: int | None = Field(default=None, ge=0)
    public_url: str | None = None
    topic: str | None = None
    events: list[str] | None = None
    rate_limit: RateLimit | None = None
    # Ingress checks before any signature work (connectors/ingress.py).
    allowed_ips: list[str] | None = None
    basic_auth: BasicAuth | None = None
    api_key: ApiKey | None = None
    _secret_bytes: list[bytes] | None = PrivateAttr(default=None)

    @field_validator("allowed_ips")
    @classmethod
    def _networks(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            parse_networks(value)
        return value

    def secret_values(self) -> list[bytes]:
        """Every configured secret, as bytes (computed once: verify runs per request)."""
        if self._secret_bytes is None:
            values = [self.secret] if self.secret is not None else []
            values.extend(self.secrets)
            self._secret_bytes = [s.get_secret_value().encode() for s in values]
        return self._secret_bytes


class SecretRequired(ConnectorConfig):
    """For shared-secret schemes: at least one of ``secret`` / ``secrets``."""

    @model_validator(mode="after")
    def _need_secret(self) -> SecretRequired:
        if self.secret is None and not self.secrets:
            raise ValueError("secret or secrets is required")
        if any(not s.get_secret_value() for s in ([self.secret] if self.secret else [])
               + list(self.secrets)):
            raise ValueError("secrets must not be empty")
        return self


class Connector:
    """Base of every inbound connector. Subclasses set ``source`` and ``Config``."""

    source: ClassVar[str]
    Config: ClassVar[type[ConnectorConfig]] = ConnectorConfig
    takes_webhooks: ClassVar[bool] = True  # False: reached only through /api/events
    methods: ClassVar[frozenset[str]] = frozenset({"POST"})  # deliveries' HTTP methods
    # The answer a provider insists on for a delivery it may consider received (accepted,
    # duplicate, filtered, dead-lettered), in place of the gateway's JSON: Dropbox Sign
    # retries anything but 200 "Hello API Event Received". None: the gateway's own answer.
    acknowledgement: ClassVar[HandshakeReply | None] = None

    def __init__(self, connector_id: str, config: ConnectorConfig) -> None:
        self.connector_id = connector_id
        self.config = config
        self.source_slug: str = self.source
        self.secrets: list[bytes] = config.secret_values()  # per request: no pydantic access

    @property
    def topic(self) -> str | None:
        return self.config.topic

    def allows(self, event_type: str) -> bool:
        """The ``events`` allow-list: an entry matches the type or its dotted prefix."""
        allowed = self.config.events
        if allowed is None:
            return True
        return any(event_type == e or event_type.startswith(e + ".") for e in allowed)

    def challenge(self, request: InboundRequest) -> HandshakeReply | None:
        """A handshake that carries its own proof, answered before any signature check
        (Meta's verify token, Dropbox's and Okta's GET, Graph's validationToken). The
        only hook that sees GET requests."""
        return None

    def handshake(self, request: InboundRequest) -> HandshakeReply | None:
        """A provider handshake inside an authentic (already verified) delivery."""
        return None

    async def respond(self, request: InboundRequest) -> HandshakeReply | None:
        """``handshake``, for connectors whose answer needs I/O (confirming with SNS)."""
        return self.handshake(request)

    async def aclose(self) -> None:
        """Release what the connector opened (HTTP clients); called at shutdown."""

    def verify(self, request: InboundRequest) -> None:
        raise NotImplementedError

    async def authenticate(self, request: InboundRequest) -> None:
        """``verify``, for connectors that need I/O first (fetching a signing certificate)."""
        self.verify(request)

    def delivery_id(self, request: InboundRequest) -> str:
        return "sha256:" + hashlib.sha256(request.body).hexdigest()

    def replay_key(self, request: InboundRequest) -> str | None:
        """A second deduplication key, for deliveries whose id the signature does not
        cover: without it a captured delivery sent again with a fresh id would be a new
        event. None when the delivery id is covered (the default id, the body's hash,
        is). See ``body_replay_key``."""
        return None

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        raise NotImplementedError

    def sign(self, body: bytes) -> dict[str, str]:
        """Headers an honest sender would put on ``body`` (for ``gateway sign``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot sign test deliveries")

    def sample_body(self) -> bytes:
        return b'{"type": "gateway.test", "message": "hello from gateway sign"}'


def body_replay_key(request: InboundRequest, signed_timestamp: str | None = None) -> str:
    """The body's hash, plus the timestamp the signature covers where there is one: what
    a replay of a captured delivery cannot change, whatever unsigned id it carries."""
    digest = request.sha256()
    return f"body:{digest}:{signed_timestamp}" if signed_timestamp else f"body:{digest}"


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 / ISO 8601 string or epoch seconds, as UTC; None when unusable."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            # Epoch seconds; values past the year 5000 are taken as milliseconds.
            return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, tz=UTC)
        if isinstance(value, str) and value:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def json_pointer(doc: Any, pointer: str) -> Any:
    """RFC 6901 lookup; None when any step is missing."""
    if pointer in ("", "/"):
        return doc
    node = doc
    for raw in pointer.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            node = node.get(part)
        elif (isinstance(node, list) and part.isascii() and part.isdigit()
              and len(part) < 10 and int(part) < len(node)):
            node = node[int(part)]
        else:
            return None
        if node is None:
            return None
    return node
