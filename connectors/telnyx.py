"""Telnyx (API v2 webhooks): Ed25519 over ``{timestamp}|{body}``.

    telnyx-signature-ed25519   base64 of the 64-byte signature
    telnyx-timestamp           epoch seconds, signed; 300 s either way (Telnyx's SDK)

Config: ``public_key``, the account's base64 Ed25519 key from the Mission Control portal
(32 bytes; a base64 SubjectPublicKeyInfo is taken too). The gateway holds no secret, so
it cannot sign test deliveries. The event id is inside the signed body.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, ClassVar

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import load_der_public_key

from connectors.asymmetric import PublicKeyRequired
from connectors.base import Webhook
from connectors.errors import InvalidConnector, SignatureError
from connectors.request import EventDraft, InboundRequest, parse_time
from connectors.signing import OWS
from connectors.timestamps import ReplayWindow, parse_epoch_seconds
from connectors.verification import Verification

SIGNATURE = "telnyx-signature-ed25519"
TIMESTAMP = "telnyx-timestamp"
TOLERANCE = 300  # telnyx SDK: TIMESTAMP_TOLERANCE_SECONDS, checked in both directions


def load_public_key(text: str) -> ed25519.Ed25519PublicKey:
    """Telnyx's base64 key: the raw 32 bytes, or (PEM body or not) a SubjectPublicKeyInfo."""
    body = "".join(line for line in text.strip().splitlines() if "-----" not in line)
    raw = base64.b64decode(body, validate=True)
    if len(raw) == 32:
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    key = load_der_public_key(raw)
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ValueError("not an Ed25519 key")
    return key


class TelnyxConnector(Webhook[PublicKeyRequired]):
    source: ClassVar[str] = "telnyx"
    verification = Verification(
        scheme="Ed25519, base64 (config `public_key`: Telnyx's base64 key)",
        proof="`telnyx-signature-ed25519`, `telnyx-timestamp`",
        covers="`{timestamp}|{body}`",
        window="300 s both ways",
        dedup="the event's `id` (`/data/id`, signed)",
        vectors=("generated key; every delivery first accepted by Telnyx's SDK "
                 "(`verify_webhook_signature`)"),
    )
    Config = PublicKeyRequired

    def __init__(self, connector_id: str, config: PublicKeyRequired) -> None:
        super().__init__(connector_id, config)
        try:
            self.key = load_public_key(config.public_key or "")
        except (ValueError, binascii.Error):
            raise InvalidConnector(
                f"connector {connector_id!r}: public_key must be Telnyx's base64 "
                "Ed25519 public key (Mission Control, Keys & Credentials)") from None
        self.window = ReplayWindow.of(config.tolerance_seconds, TOLERANCE)

    async def verify(self, request: InboundRequest) -> None:
        raw = (request.header(SIGNATURE) or "").strip(OWS)
        if not raw:
            raise SignatureError("signature header is missing", reason="missing_signature")
        stamp = (request.header(TIMESTAMP) or "").strip(OWS)
        self.window.check(parse_epoch_seconds(stamp))
        try:
            self.key.verify(base64.b64decode(raw, validate=True),
                            stamp.encode() + b"|" + request.body)
        except (ValueError, binascii.Error, InvalidSignature):
            raise SignatureError("signature does not match") from None

    @staticmethod
    def _event(body: Any) -> dict[str, Any] | None:
        """API v2 wraps the event in ``data`` (beside ``meta``); older ones do not."""
        if not isinstance(body, dict):
            return None
        data = body.get("data")
        return data if isinstance(data, dict) else body

    def delivery_id(self, request: InboundRequest) -> str:
        event = self._event(request.json_or_none())
        event_id = event.get("id") if event else None
        if isinstance(event_id, str) and event_id:
            return event_id
        return super().delivery_id(request)

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        body = request.json_object()
        event = self._event(body) or {}
        etype = event.get("event_type")
        return [EventDraft(type=etype if isinstance(etype, str) and etype else "telnyx.event",
                           payload=body, timestamp=parse_time(event.get("occurred_at")),
                           raw=request.body)]

    def sample_body(self) -> bytes:
        return orjson.dumps({
            "data": {"event_type": "message.received", "id": "b301ed3f-1490-491f-995f-6e64e69674d4",
                     "occurred_at": "2026-01-01T00:00:00.000+00:00", "record_type": "event",
                     "payload": {"direction": "inbound", "text": "hello from gateway sign",
                                 "type": "SMS"}},
            "meta": {"attempt": 1, "delivered_to": "https://hooks.example.com/webhooks/telnyx"}})
