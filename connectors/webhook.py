"""The generic ``webhook`` connector: HMAC from any sender, every fact configurable.

    type: webhook
    config:
      secret: ${WEBHOOK_SECRET}
      signature_header: X-Signature       # default
      algorithm: sha256                   # sha1 | sha256 | sha512
      encoding: hex                       # hex | base64
      prefix: "sha256="                   # optional
      timestamp_header: X-Timestamp       # optional; then "{timestamp}.{body}" is signed
      tolerance_seconds: 300
      id_header: X-Delivery-Id            # optional stable delivery id (else body hash)
      event_type_pointer: /type           # JSON pointer, or
      event_type_header: X-Event-Type     # a header; else "webhook.received"
      timestamp_pointer: /created_at      # optional event time
      source: webhook                     # provider slug in the envelope
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Literal

from pydantic import model_validator

from connectors.base import Webhook
from connectors.options import SecretRequired
from connectors.request import EventDraft, InboundRequest, body_replay_key, json_pointer, parse_time
from connectors.signing import Encoding, HmacScheme
from connectors.verification import Verification


class WebhookConfig(SecretRequired):
    signature_header: str = "X-Signature"
    # MD5 exists in the engine for a provider that uses it; a new integration should not
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    encoding: Encoding = "hex"
    prefix: str = ""
    timestamp_header: str | None = None
    signed_payload: str | None = None
    id_header: str | None = None
    event_type_pointer: str | None = None
    event_type_header: str | None = None
    timestamp_pointer: str | None = None
    source: str = "webhook"

    @model_validator(mode="after")
    def _signed_timestamp(self) -> WebhookConfig:
        if (self.timestamp_header and self.signed_payload
                and "{timestamp}" not in self.signed_payload):
            raise ValueError("signed_payload must contain {timestamp} when timestamp_header"
                             " is set: an unsigned timestamp would let a captured delivery"
                             " be replayed with a fresh one")
        return self


class WebhookConnector(Webhook[WebhookConfig]):
    source: ClassVar[str] = "webhook"
    verification = Verification(
        scheme="any HMAC: digest, encoding and prefix configured",
        proof="the configured header",
        covers="the body, or a configured template with a signed timestamp and id",
        window="configured (`tolerance_seconds`)",
        dedup="the configured id header or body SHA-256",
        vectors="the gateway's own scheme (README): signed by `gateway sign`",
    )
    Config = WebhookConfig

    def __init__(self, connector_id: str, config: WebhookConfig) -> None:
        super().__init__(connector_id, config)
        signed = config.signed_payload or (
            "{timestamp}.{body}" if config.timestamp_header else "{body}")
        self.scheme = HmacScheme(
            header=config.signature_header, digest=config.algorithm, encoding=config.encoding,
            prefix=config.prefix, signed=signed, timestamp_header=config.timestamp_header,
            delivery_id_header=config.id_header,
            tolerance_seconds=300 if config.tolerance_seconds is None
            else config.tolerance_seconds)
        self.source_slug = config.source

    async def verify(self, request: InboundRequest) -> None:
        self.scheme.verify(request, self.secrets, url=self.config.public_url)

    def sign(self, body: bytes) -> dict[str, str]:
        return self.scheme.sign(self.secrets[0], body,
                                delivery_id=str(uuid.uuid4()), url=self.config.public_url or "")

    def delivery_id(self, request: InboundRequest) -> str:
        if self.config.id_header:
            value = request.header(self.config.id_header)
            if value:
                return value
        return super().delivery_id(request)

    def replay_key(self, request: InboundRequest) -> str | None:
        if not self.config.id_header or self.scheme.signs_delivery_id:
            return None  # the id is the body's hash, or signed
        return body_replay_key(request, self.scheme.signed_timestamp(request))

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        payload = request.json_object()
        etype: Any = None
        if self.config.event_type_pointer:
            etype = json_pointer(payload, self.config.event_type_pointer)
        if not etype and self.config.event_type_header:
            etype = request.header(self.config.event_type_header)
        if not isinstance(etype, str) or not etype:
            etype = "webhook.received"
        ts = None
        if self.config.timestamp_pointer:
            ts = parse_time(json_pointer(payload, self.config.timestamp_pointer))
        return [EventDraft(type=etype, payload=payload, timestamp=ts, raw=request.body)]
