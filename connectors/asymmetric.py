"""Providers that sign with a private key: the gateway holds only their public key.

    discord    Ed25519 over ``timestamp + body``, hex (X-Signature-Ed25519)
    sendgrid   ECDSA P-256 / SHA-256 over ``timestamp + body``, base64 DER
               (X-Twilio-Email-Event-Webhook-Signature); the body is a batch of events

Config: ``public_key`` (Discord: 64 hex chars; SendGrid: the base64 verification key).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pydantic import model_validator

from connectors.base import Webhook
from connectors.errors import InvalidConnector, SignatureError, Unnormalizable
from connectors.options import ConnectorConfig
from connectors.request import EventDraft, HandshakeReply, InboundRequest, parse_time
from connectors.signing import OWS
from connectors.timestamps import CLOCK_SKEW, ReplayWindow, parse_epoch_seconds
from connectors.verification import Verification


class PublicKeyRequired(ConnectorConfig):
    @model_validator(mode="after")
    def _need_key(self) -> PublicKeyRequired:
        if not self.public_key:
            raise ValueError("public_key is required")
        return self


def _timestamp(request: InboundRequest, header: str, window: ReplayWindow) -> str:
    """The signed timestamp header, as sent (epoch seconds in ASCII digits), checked."""
    stamp = (request.header(header) or "").strip(OWS)
    window.check(parse_epoch_seconds(stamp))
    return stamp


class DiscordConnector(Webhook[PublicKeyRequired]):
    """Discord interactions and webhook events; PINGs are answered after verification."""

    source: ClassVar[str] = "discord"
    verification = Verification(
        scheme="Ed25519, hex (config `public_key`)",
        proof="`X-Signature-Ed25519`, `X-Signature-Timestamp`",
        covers="`{timestamp}{body}`",
        window="300 s (none documented; `tolerance_seconds`)",
        dedup="body SHA-256",
        handshake=('PING answered after its signature checks: interactions 200 `{"type":1}`, '
                   'webhook events 204'),
        vectors="PyNaCl-signed, checked by discord-interactions; Discord's real PING body",
    )
    Config = PublicKeyRequired
    SIGNATURE = "X-Signature-Ed25519"
    TIMESTAMP = "X-Signature-Timestamp"
    TOLERANCE = 300  # Discord documents none; a replay window is ours to keep

    def __init__(self, connector_id: str, config: PublicKeyRequired) -> None:
        super().__init__(connector_id, config)
        try:
            self.key = ed25519.Ed25519PublicKey.from_public_bytes(
                bytes.fromhex(config.public_key or ""))
        except ValueError:
            raise InvalidConnector(
                f"connector {connector_id!r}: public_key must be the "
                "application's 64-hex-character Ed25519 key") from None

    async def verify(self, request: InboundRequest) -> None:
        raw = request.header(self.SIGNATURE)
        if not raw:
            raise SignatureError("signature header is missing", reason="missing_signature")
        stamp = _timestamp(request, self.TIMESTAMP,
                           ReplayWindow.of(self.config.tolerance_seconds, self.TOLERANCE))
        try:
            self.key.verify(bytes.fromhex(raw.strip()), stamp.encode() + request.body)
        except (ValueError, InvalidSignature):
            raise SignatureError("signature does not match") from None

    async def handshake(self, request: InboundRequest) -> HandshakeReply | None:
        body = request.json_or_none()
        if not isinstance(body, dict):
            return None
        # Interactions: {"type": 1, "id", "token", "version": 1, ...} is a PING (PONG it).
        # Webhook events: {"version": 1, "type": 0} is their PING, {"type": 1, "event": {..}}
        # an event: only the "event" object tells the two type-1 bodies apart.
        if body.get("type") == 1 and "event" not in body:
            return HandshakeReply(200, b'{"type":1}')  # interactions PING -> PONG
        if body.get("type") == 0 and "version" in body:
            return HandshakeReply(204, b"")  # webhook events PING
        return None

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        payload = request.json_object()
        event = payload.get("event")
        if isinstance(event, dict):  # webhook events: {"version": 1, "type": 1, "event": ...}
            etype = str(event.get("type") or "discord.event")
            return [EventDraft(type=etype, payload=payload,
                               timestamp=parse_time(event.get("timestamp")))]
        return [EventDraft(type=f"interaction.{payload.get('type', 'unknown')}",
                           payload=payload)]


class SendGridConnector(Webhook[PublicKeyRequired]):
    """SendGrid's Event Webhook: a signed batch, one event per element."""

    source: ClassVar[str] = "sendgrid"
    verification = Verification(
        scheme="ECDSA P-256 SHA-256, base64 DER (config `public_key`)",
        proof="`X-Twilio-Email-Event-Webhook-Signature`, `-Timestamp`",
        covers="`{timestamp}{body}`",
        window="24 h + 5 min back, 5 min ahead (SendGrid retries for a day; `tolerance_seconds`)",
        dedup="body SHA-256",
        vectors="sendgrid SDK unit-test vector + SDK check",
    )
    Config = PublicKeyRequired
    SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
    TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
    # SendGrid retries a failed POST for up to 24 hours: a retry signed at the first
    # attempt must still pass, and a replay inside the window is a duplicate.
    TOLERANCE = 24 * 3600 + CLOCK_SKEW

    def __init__(self, connector_id: str, config: PublicKeyRequired) -> None:
        super().__init__(connector_id, config)
        text = (config.public_key or "").strip()
        text = "".join(line for line in text.splitlines() if "-----" not in line)
        try:
            key = load_der_public_key(base64.b64decode(text, validate=True))
        except (ValueError, binascii.Error):
            key = None
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise InvalidConnector(
                f"connector {connector_id!r}: public_key must be SendGrid's "
                "base64 verification key (ECDSA P-256)")
        self.key = key

    async def verify(self, request: InboundRequest) -> None:
        raw = request.header(self.SIGNATURE)
        if not raw:
            raise SignatureError("signature header is missing", reason="missing_signature")
        stamp = _timestamp(request, self.TIMESTAMP,
                           ReplayWindow.of(self.config.tolerance_seconds, self.TOLERANCE,
                                           future=CLOCK_SKEW))
        try:
            self.key.verify(base64.b64decode(raw.strip(), validate=True),
                            stamp.encode() + request.body, ec.ECDSA(hashes.SHA256()))
        except (ValueError, binascii.Error, InvalidSignature):
            raise SignatureError("signature does not match") from None

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        events: Any = request.json()
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise Unnormalizable("body is not a JSON array of events")
        return [EventDraft(type=str(e.get("event") or "sendgrid.event"), payload=e,
                           timestamp=parse_time(e.get("timestamp"))) for e in events]

    def sample_body(self) -> bytes:
        """SendGrid posts a JSON array of events."""
        return (b'[{"email":"example@test.com","timestamp":1700000000,"event":"delivered",'
                b'"sg_event_id":"sg-test-1","sg_message_id":"sg-msg-1"}]')
