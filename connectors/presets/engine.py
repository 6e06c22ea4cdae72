"""The preset engine: one ``Preset`` row of data per provider, one connector class
built from each (``connector_class``). A preset knows its signature scheme, where its
event type, delivery id and event time are, and its handshakes (``handshakes.py``)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import orjson

from connectors.base import Webhook
from connectors.errors import InvalidConnector, Unnormalizable
from connectors.options import ConnectorConfig, SecretRequired
from connectors.presets.describe import summary, verification
from connectors.presets.handshakes import Handshake
from connectors.request import (
    EventDraft,
    HandshakeReply,
    InboundRequest,
    body_replay_key,
    json_pointer,
    parse_time,
)
from connectors.signing import HmacScheme, TokenScheme, key_from_secret


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    scheme: HmacScheme | TokenScheme
    type_header: str | None = None  # event type from a header ...
    type_pointer: str | None = None  # ... or from the JSON body
    action_pointer: str | None = None  # appended to the type: "pull_request.opened"
    id_header: str | None = None  # the provider's delivery id, for ids and dedup ...
    id_pointer: str | None = None  # ... or from the body
    # ... or, with neither, the body's hash and the signed timestamp: identical bodies are
    # distinct events (Ghost's `{"event":"site.changed"}`), a replay is not
    id_timestamp: bool = False
    time_pointer: str | None = None  # the event's own time in the body
    needs_url: bool = False  # the URL is signed: `public_url` is required
    handshake: Handshake | None = None  # inside a verified delivery (handshakes.py)
    challenge: Handshake | None = None  # carries its own proof, answered before verify
    known_types: tuple[str, ...] = ()  # when set, other types are dead-lettered
    batch: bool = False  # the body is a JSON array, one event per element
    batch_pointer: str | None = None  # ... or the array is at this pointer in the body
    aliases: dict[str, str] = field(default_factory=dict)  # header -> its other name
    # the answer the provider insists on for a received delivery (``Webhook.acknowledgement``)
    acknowledgement: HandshakeReply | None = None
    sample: dict[str, Any] = field(default_factory=dict)

    @property
    def signs_body(self) -> bool:
        return isinstance(self.scheme, HmacScheme)


def _sample_headers(preset: Preset) -> dict[str, str]:
    return {preset.type_header: "test"} if preset.type_header else {}


class PresetConnector(Webhook[ConnectorConfig]):
    """A connector driven by a ``Preset``; subclasses only set ``preset``."""

    preset: ClassVar[Preset]
    Config: ClassVar[type[ConnectorConfig]] = SecretRequired

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if "preset" in cls.__dict__:  # a class may state its own of each
            if "verification" not in cls.__dict__:
                cls.verification = verification(cls.preset)
            if "acknowledgement" not in cls.__dict__:
                cls.acknowledgement = cls.preset.acknowledgement

    def __init__(self, connector_id: str, config: ConnectorConfig) -> None:
        super().__init__(connector_id, config)
        scheme = self.preset.scheme
        try:
            self.keys = [key_from_secret(s, scheme.key_format) for s in self.secrets]
        except ValueError:
            raise InvalidConnector(f"connector {connector_id!r}: a secret is not in the "
                             f"{scheme.key_format} format this provider uses") from None

    async def verify(self, request: InboundRequest) -> None:
        self.check(request)

    def check(self, request: InboundRequest) -> None:
        """``verify``, for the handshakes that must check a request before answering."""
        self.preset.scheme.verify(request, self.keys,
                                  tolerance_seconds=self.config.tolerance_seconds,
                                  url=self.config.public_url)

    def _header(self, request: InboundRequest, name: str) -> str | None:
        value = request.header(name)
        if value is None and (alias := self.preset.aliases.get(name)):
            return request.header(alias)
        return value

    def delivery_id(self, request: InboundRequest) -> str:
        p = self.preset
        if p.id_header and (value := self._header(request, p.id_header)):
            return value
        if p.id_pointer:
            found = json_pointer(request.json_or_none(), p.id_pointer)
            if found is not None and not isinstance(found, dict | list):
                return str(found)
        if p.id_timestamp and isinstance(p.scheme, HmacScheme):
            stamp = p.scheme.signed_timestamp(request)
            if stamp:
                return f"sha256:{request.sha256()}:{stamp}"
        return super().delivery_id(request)

    def replay_key(self, request: InboundRequest) -> str | None:
        p = self.preset
        if not (p.id_header and self._header(request, p.id_header)):
            return None  # the id comes from the (signed) body, or is the body's hash
        scheme = p.scheme
        if isinstance(scheme, HmacScheme):
            if scheme.signs_delivery_id:
                return None
            return body_replay_key(request, scheme.signed_timestamp(request))
        return body_replay_key(request)

    def payload(self, request: InboundRequest) -> dict[str, Any]:
        ctype = (request.header("content-type") or "").split(";")[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            try:
                return dict(parse_qsl(request.body.decode(), keep_blank_values=True))
            except UnicodeDecodeError:
                raise Unnormalizable("form body is not UTF-8") from None
        return request.json_object()

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        p = self.preset
        if p.batch or p.batch_pointer:
            items = request.json()
            if p.batch_pointer:
                items = json_pointer(items, p.batch_pointer)
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                where = f"at {p.batch_pointer}" if p.batch_pointer else "body"
                raise Unnormalizable(f"{where} is not a JSON array of events")
            return [self._event(request, item) for item in items]
        payload = self.payload(request)
        draft = self._event(request, payload)
        if (request.header("content-type") or "").split(";")[0].strip().lower() != \
                "application/x-www-form-urlencoded":
            draft.raw = request.body  # the JSON body itself, unchanged
        return [draft]

    def _event(self, request: InboundRequest, payload: dict[str, Any]) -> EventDraft:
        p = self.preset
        etype: Any = self._header(request, p.type_header) if p.type_header else None
        if not etype and p.type_pointer:
            etype = json_pointer(payload, p.type_pointer)
        if not isinstance(etype, str) or not etype:
            etype = f"{self.source}.event"
        if p.action_pointer:
            action = json_pointer(payload, p.action_pointer)
            if isinstance(action, str) and action:
                etype = f"{etype}.{action}"
        if p.known_types and etype not in p.known_types:
            raise Unnormalizable(f"unknown {p.name} event type {etype!r}; known: "
                                 f"{', '.join(p.known_types)}")
        ts = parse_time(json_pointer(payload, p.time_pointer)) if p.time_pointer else None
        return EventDraft(type=etype, payload=payload, timestamp=ts)

    def challenge(self, request: InboundRequest) -> HandshakeReply | None:
        c = self.preset.challenge
        return None if c is None else c.answer(self, request)

    async def handshake(self, request: InboundRequest) -> HandshakeReply | None:
        h = self.preset.handshake
        return None if h is None else h.answer(self, request)

    def sign(self, body: bytes) -> dict[str, str]:
        p = self.preset
        headers = p.scheme.sign(self.secrets[0], body, delivery_id=str(uuid.uuid4()),
                                url=self.config.public_url or "")
        if p.id_header and p.id_header not in headers:
            headers[p.id_header] = str(uuid.uuid4())
        return {**_sample_headers(p), **headers}

    def sample_body(self) -> bytes:
        p = self.preset
        body: Any = p.sample or {"type": f"{self.source}.test"}
        if p.batch:
            return orjson.dumps([body])
        if p.batch_pointer:
            body = {p.batch_pointer.strip("/"): [body]}
        scheme = p.scheme
        if isinstance(scheme, HmacScheme) and scheme.timestamp_pointer and \
                scheme.timestamp_pointer.count("/") == 1:  # signed: a fresh one (Linear)
            now = time.time()
            body = {**body, scheme.timestamp_pointer[1:]:
                    int(now * 1000) if scheme.timestamp_format == "unix_ms" else int(now)}
        return orjson.dumps(body)


def config_for(preset: Preset) -> type[ConnectorConfig]:
    if preset.challenge is not None and preset.challenge.Config is not None:
        return preset.challenge.Config
    if not preset.needs_url:
        return SecretRequired

    class UrlSigned(SecretRequired):
        """This provider signs the URL it calls: ``public_url`` must be that URL."""

        public_url: str

    UrlSigned.__name__ = UrlSigned.__qualname__ = f"{preset.name}_config"
    return UrlSigned


def connector_class(preset: Preset) -> type[PresetConnector]:
    """The connector type a preset is in config (``type: stripe``)."""
    return type(preset.name, (PresetConnector,), {
        "preset": preset, "source": preset.name, "Config": config_for(preset),
        "__doc__": summary(preset), "__module__": __name__})
