"""Microsoft: Azure Event Grid webhooks and Microsoft Teams outgoing webhooks.

    azure_event_grid  a shared key in the query (``?code=``, or ``query_parameter``) or a
                      header (``aeg-sas-key``, or ``header``), compared in constant time.
                      It authenticates the sender, not the body: the body's SHA-256 is
                      claimed for dedup too. Handshakes: the Event Grid schema's
                      SubscriptionValidationEvent (answered ``{"validationResponse": code}``
                      once the key checks out) and the CloudEvents 1.0 abuse-protection
                      OPTIONS request (``WebHook-Request-Origin`` -> ``WebHook-Allowed-Origin``
                      for ``allowed_origins``, default ``eventgrid.azure.net``; the key is
                      required there too: Event Grid calls the same URL). Bodies: an Event
                      Grid schema array, a CloudEvents batch, or one CloudEvent; one event
                      per element (type ``eventType``/``type``, time ``eventTime``/``time``).
    teams_outgoing    ``Authorization: HMAC <base64(HMAC-SHA256(base64decode(secret), body))>``;
                      ``secret`` is the security token Teams shows once, at creation.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, ClassVar

import orjson
from pydantic import Field

from connectors.base import Webhook
from connectors.errors import InvalidConnector, SignatureError, Unnormalizable
from connectors.options import SecretRequired
from connectors.request import (
    EventDraft,
    HandshakeReply,
    InboundRequest,
    body_replay_key,
    parse_time,
)
from connectors.signing import OWS, HmacScheme, key_from_secret, matches_any
from connectors.verification import Verification

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
_ORIGIN = re.compile(r"[A-Za-z0-9.-]{1,253}")


class EventGridConfig(SecretRequired):
    query_parameter: str = Field(default="code", min_length=1)
    header: str = Field(default="aeg-sas-key", min_length=1)
    allowed_origins: list[str] = Field(default_factory=lambda: ["eventgrid.azure.net"],
                                       min_length=1)  # "*": any origin


def _events(body: Any) -> list[dict[str, Any]] | None:
    """The events of an Event Grid / CloudEvents batch, or of one CloudEvent."""
    events = [body] if isinstance(body, dict) else body
    if not isinstance(events, list) or not events or not all(
            isinstance(e, dict) for e in events):
        return None
    return events


class EventGridConnector(Webhook[EventGridConfig]):
    source: ClassVar[str] = "azure_event_grid"
    verification = Verification(
        scheme="shared key (`secret`)",
        proof="`?code=` or `aeg-sas-key`",
        covers="not the body (a key)",
        window="none",
        dedup="the events' ids",
        handshake=("SubscriptionValidation answered with its code; CloudEvents OPTIONS "
                   "(WebHook-Request-Origin) allowed"),
        vectors=("Microsoft's published validation event + deliveries made by Azure's "
                 "`EventGridPublisherClient`"),
    )
    Config = EventGridConfig

    def __init__(self, connector_id: str, config: EventGridConfig) -> None:
        super().__init__(connector_id, config)
        self.origins = {o.lower() for o in config.allowed_origins}

    async def verify(self, request: InboundRequest) -> None:
        self.check(request)

    def check(self, request: InboundRequest) -> None:
        """``verify``, for the OPTIONS handshake that must check the key before answering."""
        given = [value.strip(OWS).encode() for value in (
            request.query.get(self.config.query_parameter),
            request.header(self.config.header)) if value and value.strip(OWS)]
        if not given:
            raise SignatureError(f"shared key is missing (?{self.config.query_parameter}= or "
                                 f"{self.config.header})", reason="missing_signature")
        if not matches_any(self.secrets, given):
            raise SignatureError("shared key does not match")

    def challenge(self, request: InboundRequest) -> HandshakeReply | None:
        """CloudEvents 1.0 webhook abuse protection (HTTP OPTIONS)."""
        origin = (request.header("webhook-request-origin") or "").strip(OWS)
        if request.method != "OPTIONS" or not origin:
            return None
        try:
            self.check(request)
        except SignatureError as exc:
            return HandshakeReply(401, orjson.dumps({"error": "unauthorized",
                                                     "detail": exc.detail}))
        if not _ORIGIN.fullmatch(origin) or ("*" not in self.origins
                                             and origin.lower() not in self.origins):
            return HandshakeReply(403, b'{"error":"forbidden","detail":"origin not allowed"}')
        return HandshakeReply(200, b"", headers={
            "WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*",
            "Allow": "POST, OPTIONS"})

    async def handshake(self, request: InboundRequest) -> HandshakeReply | None:
        """The Event Grid schema's validation event, answered with its code (200)."""
        events = _events(request.json_or_none()) or []
        if not events or events[0].get("eventType") != VALIDATION_EVENT:
            return None
        data = events[0].get("data")
        code = data.get("validationCode") if isinstance(data, dict) else None
        if not isinstance(code, str) or not code:
            return HandshakeReply(400, b'{"error":"malformed","detail":"no validationCode"}')
        return HandshakeReply(200, orjson.dumps({"validationResponse": code}))

    def delivery_id(self, request: InboundRequest) -> str:
        events = _events(request.json_or_none()) or []
        ids = [e.get("id") for e in events]
        if not ids or not all(isinstance(i, str) and i for i in ids):
            return super().delivery_id(request)
        if len(ids) == 1:
            return str(ids[0])
        return "batch:" + hashlib.sha256("\x00".join(map(str, ids)).encode()).hexdigest()

    def replay_key(self, request: InboundRequest) -> str | None:
        return body_replay_key(request)  # the key does not cover the body or its ids

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        events = _events(request.json())
        if events is None:
            raise Unnormalizable("body is not an event, or an array of event objects")
        drafts = []
        for event in events:
            etype = event.get("eventType") or event.get("type")
            drafts.append(EventDraft(
                type=etype if isinstance(etype, str) and etype else "azure.event",
                payload=event, timestamp=parse_time(event.get("eventTime") or event.get("time"))))
        return drafts

    def sign(self, body: bytes) -> dict[str, str]:
        return {self.config.header: self.secrets[0].decode()}

    def sample_body(self) -> bytes:
        return orjson.dumps([{
            "id": "831e1650-001e-001b-66ab-eeb76e069631", "eventType": "Gateway.Test",
            "subject": "/gateway/test", "eventTime": "2026-01-01T00:00:00Z",
            "topic": "/subscriptions/x/resourceGroups/g/providers/Microsoft.EventGrid/topics/t",
            "data": {"message": "hello from gateway sign"}, "dataVersion": "1.0",
            "metadataVersion": "1"}])


class TeamsOutgoingConnector(Webhook[SecretRequired]):
    """Teams outgoing webhooks (a channel @mention): a Bot Framework activity per POST."""

    source: ClassVar[str] = "teams_outgoing"
    verification = Verification(
        scheme="HMAC-SHA256 base64, key base64-decoded",
        proof="`Authorization: HMAC ...`",
        covers="the body",
        window="none",
        dedup="the activity `id`",
        vectors="Microsoft's published example key, computed as Microsoft's sample does",
    )
    Config = SecretRequired
    SCHEME = HmacScheme("Authorization", encoding="base64", prefix="HMAC ",
                        key_format="base64")

    def __init__(self, connector_id: str, config: SecretRequired) -> None:
        super().__init__(connector_id, config)
        try:
            self.keys = [key_from_secret(s, "base64") for s in self.secrets]
        except ValueError:
            raise InvalidConnector(
                f"connector {connector_id!r}: secret must be the base64 security "
                "token Teams showed when the outgoing webhook was created") from None

    async def verify(self, request: InboundRequest) -> None:
        self.SCHEME.verify(request, self.keys)

    def delivery_id(self, request: InboundRequest) -> str:
        body = request.json_or_none()
        activity_id = body.get("id") if isinstance(body, dict) else None
        if isinstance(activity_id, str) and activity_id:
            return activity_id  # inside the signed body
        return super().delivery_id(request)

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        activity = request.json_object()
        kind = activity.get("type")
        return [EventDraft(type=f"teams.{kind}" if isinstance(kind, str) and kind
                           else "teams.activity", payload=activity, raw=request.body,
                           timestamp=parse_time(activity.get("timestamp")))]

    def sign(self, body: bytes) -> dict[str, str]:
        return self.SCHEME.sign(self.secrets[0], body)

    def sample_body(self) -> bytes:
        return orjson.dumps({
            "type": "message", "id": "1485983408511", "timestamp": "2026-01-01T00:00:00.000Z",
            "serviceUrl": "https://smba.trafficmanager.net/amer/", "channelId": "msteams",
            "from": {"id": "29:1abc", "name": "Megan Bowen"},
            "conversation": {"id": "19:abc@thread.skype;messageid=1485983408511"},
            "text": "<at>Gateway</at> hello from gateway sign",
            "channelData": {"teamsChannelId": "19:abc@thread.skype",
                            "teamsTeamId": "19:abc@thread.skype"}})
