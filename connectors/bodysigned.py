"""Providers whose proof travels inside the body rather than in a header.

    adyen             every ``notificationItems[].NotificationRequestItem`` carries
                      ``additionalData.hmacSignature``: base64 HMAC-SHA256, with the
                      hex-decoded HMAC key, of ``pspReference:originalReference:
                      merchantAccountCode:merchantReference:value:currency:eventCode:
                      success`` (raw values, no escaping). Every item must verify; each
                      becomes an event of type ``eventCode``, its signature removed.
                      Nothing else in an item is signed, and there is no timestamp.
    mailgun           ``signature: {timestamp, token, signature}``: hex HMAC-SHA256 of
                      ``timestamp + token`` with the webhook signing key. It does not cover
                      the event, so the token is the delivery id: inside the dedup window a
                      token is accepted once, which is the single use Mailgun recommends.
    microsoft_graph   every notification carries the subscription's ``clientState``
                      (the configured ``secret``); it is compared in constant time and
                      removed from the payload. ``?validationToken=`` is echoed as text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from typing import Any, ClassVar

import orjson
from pydantic import model_validator

from connectors.base import Webhook
from connectors.errors import SignatureError, Unnormalizable
from connectors.options import SecretRequired
from connectors.request import EventDraft, HandshakeReply, InboundRequest, parse_time
from connectors.signing import matches_any
from connectors.timestamps import (
    ReplayWindow,
    epoch_text,
    parse_epoch_seconds,
)
from connectors.verification import Verification


class MailgunConnector(Webhook[SecretRequired]):
    source: ClassVar[str] = "mailgun"
    verification = Verification(
        scheme="HMAC-SHA256 hex",
        proof="body `signature` object",
        covers="`{timestamp}{token}` (not the event)",
        window="900 s",
        dedup="the token (single use in the window)",
        vectors="mailgun SDK SecurityGuard",
    )
    Config = SecretRequired
    TOLERANCE = 900  # the official SDK's max_age_seconds

    async def verify(self, request: InboundRequest) -> None:
        body = request.json_or_none()
        sig = body.get("signature") if isinstance(body, dict) else None
        if not isinstance(sig, dict) or not all(
                isinstance(sig.get(k), str | int) for k in ("timestamp", "token", "signature")):
            raise SignatureError("signature object is missing", reason="missing_signature")
        stamp, token = epoch_text(sig["timestamp"]), str(sig["token"])
        ReplayWindow.of(self.config.tolerance_seconds, self.TOLERANCE).check(
            parse_epoch_seconds(stamp) if stamp is not None else None)
        assert stamp is not None  # checked: a missing timestamp raised
        message = (stamp + token).encode()
        expected = (hmac.new(key, message, hashlib.sha256).hexdigest().encode()
                    for key in self.secrets)
        if not matches_any(expected, [str(sig["signature"]).encode()]):
            raise SignatureError("signature does not match")

    def delivery_id(self, request: InboundRequest) -> str:
        body = request.json_or_none()
        token = body.get("signature", {}).get("token") if isinstance(body, dict) else None
        return f"token:{token}" if isinstance(token, str) else super().delivery_id(request)

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        data = request.json_object().get("event-data")
        if not isinstance(data, dict):
            raise Unnormalizable("event-data is missing")
        return [EventDraft(type=str(data.get("event") or "mailgun.event"), payload=data,
                           timestamp=parse_time(data.get("timestamp")))]

    def sign(self, body: bytes) -> dict[str, str]:  # the proof is in the body: see sample
        return {}

    def sample_body(self) -> bytes:
        stamp, token = str(int(time.time())), hashlib.sha256(str(time.time()).encode()
                                                            ).hexdigest()[:50]
        signature = hmac.new(self.secrets[0], (stamp + token).encode(),
                             hashlib.sha256).hexdigest()
        return orjson.dumps({"signature": {"timestamp": stamp, "token": token,
                                           "signature": signature},
                             "event-data": {"event": "delivered", "id": "sample",
                                            "timestamp": time.time()}})


class GraphConnector(Webhook[SecretRequired]):
    source: ClassVar[str] = "microsoft_graph"
    verification = Verification(
        scheme="shared `clientState`",
        proof="each notification item (stripped from payloads)",
        covers="nothing: it authenticates the sender",
        window="none",
        dedup="body SHA-256",
        handshake="`?validationToken=` echoed, before any check",
        vectors="documented behaviour (no signature to vector)",
    )
    Config = SecretRequired  # secret: the subscription's clientState

    def challenge(self, request: InboundRequest) -> HandshakeReply | None:
        token = request.query.get("validationToken")
        if token is None:
            return None
        return HandshakeReply(200, token.encode(), "text/plain",
                              {"X-Content-Type-Options": "nosniff"})

    async def verify(self, request: InboundRequest) -> None:
        body = request.json_or_none()
        items = body.get("value") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items or not all(
                isinstance(i, dict) and isinstance(i.get("clientState"), str) for i in items):
            raise SignatureError("clientState is missing", reason="missing_signature")
        for item in items:
            if not matches_any(self.secrets, [item["clientState"].encode()]):
                raise SignatureError("clientState does not match")

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        items = request.json_object().get("value")
        if not isinstance(items, list):
            raise Unnormalizable("value is not a list of notifications")
        drafts = []
        for item in items:
            payload = {k: v for k, v in item.items() if k != "clientState"}  # the secret
            kind = item.get("lifecycleEvent") or item.get("changeType") or "notification"
            drafts.append(EventDraft(type=f"graph.{kind}", payload=payload))
        return drafts

    def sign(self, body: bytes) -> dict[str, str]:
        return {}

    def sample_body(self) -> bytes:
        return orjson.dumps({"value": [{
            "subscriptionId": "sample", "changeType": "created", "resource": "users/1",
            "clientState": self.secrets[0].decode()}]})


class AdyenConfig(SecretRequired):
    """``secret``/``secrets``: the HMAC key(s) from the Customer Area, in hex."""

    @model_validator(mode="after")
    def _hex_keys(self) -> AdyenConfig:
        for key in self.secret_values():
            try:
                binascii.a2b_hex(key)
            except (binascii.Error, ValueError):
                raise ValueError("the HMAC key must be hex, as the Customer Area shows it"
                                 ) from None
        return self


_ADYEN_FIELDS = ("pspReference", "originalReference", "merchantAccountCode",
                 "merchantReference")


def adyen_signed_string(item: dict[str, Any]) -> bytes:
    amount = item.get("amount")
    if not isinstance(amount, dict):
        amount = {}
    values = [*(item.get(f, "") for f in _ADYEN_FIELDS), amount.get("value", ""),
              amount.get("currency", ""), item.get("eventCode", ""), item.get("success", "")]
    return ":".join("" if v is None else str(v) for v in values).encode()


class AdyenConnector(Webhook[AdyenConfig]):
    source: ClassVar[str] = "adyen"
    verification = Verification(
        scheme="HMAC-SHA256 base64, key hex-decoded",
        proof=("each `notificationItems[].NotificationRequestItem.additionalData.hmacSignature` "
               "(every item must verify; stripped)"),
        covers=("`pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success`"),
        window="none signed",
        dedup="the items' signed fields",
        handshake="every batch acknowledged `[accepted]`",
        vectors=("Adyen's documented example + Adyen SDK `generate_notification_sig` / "
                 "`is_valid_hmac_notification`"),
    )
    Config = AdyenConfig

    def __init__(self, connector_id: str, config: Any) -> None:
        super().__init__(connector_id, config)
        self.keys = [binascii.a2b_hex(key) for key in self.secrets]

    @staticmethod
    def _items(request: InboundRequest) -> list[dict[str, Any]]:
        """The notification items; none when the body is not Adyen's shape."""
        body = request.json_or_none()
        entries = body.get("notificationItems") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            return []
        items = []
        for entry in entries:
            item = entry.get("NotificationRequestItem") if isinstance(entry, dict) else None
            if not isinstance(item, dict):
                return []
            items.append(item)
        return items

    async def verify(self, request: InboundRequest) -> None:
        items = self._items(request)
        if not items:
            raise SignatureError("no notification items to verify", reason="missing_signature")
        for item in items:
            extra = item.get("additionalData")
            given = extra.get("hmacSignature") if isinstance(extra, dict) else None
            if not isinstance(given, str) or not given:
                raise SignatureError("a notification item has no hmacSignature",
                                     reason="missing_signature")
            try:
                signature = base64.b64decode(given, validate=True)
            except (binascii.Error, ValueError):
                raise SignatureError("signature does not match") from None
            message = adyen_signed_string(item)
            expected = (hmac.new(key, message, hashlib.sha256).digest() for key in self.keys)
            if not matches_any(expected, [signature]):
                raise SignatureError("signature does not match")

    def delivery_id(self, request: InboundRequest) -> str:
        """Adyen sends no delivery id; a redelivery repeats the same items."""
        keys = "\n".join(adyen_signed_string(i).decode() for i in self._items(request))
        return "items:" + hashlib.sha256(keys.encode()).hexdigest()

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        drafts = []
        for item in self._items(request):
            payload = dict(item)
            extra = payload.get("additionalData")
            if isinstance(extra, dict):
                payload["additionalData"] = {k: v for k, v in extra.items()
                                             if k != "hmacSignature"}
            etype = item.get("eventCode")
            if not isinstance(etype, str) or not etype:
                raise Unnormalizable("a notification item has no eventCode")
            drafts.append(EventDraft(type=etype, payload=payload,
                                     timestamp=parse_time(item.get("eventDate"))))
        return drafts

    def sign(self, body: bytes) -> dict[str, str]:  # the proof is in the body: see sample
        return {}

    def sample_body(self) -> bytes:
        item: dict[str, Any] = {
            "pspReference": hashlib.sha256(str(time.time()).encode()).hexdigest()[:16].upper(),
            "merchantAccountCode": "YourMerchantAccount", "merchantReference": "sample-1",
            "amount": {"value": 1130, "currency": "EUR"}, "eventCode": "AUTHORISATION",
            "success": "true", "eventDate": "2026-01-01T12:00:00+01:00"}
        mac = hmac.new(self.keys[0], adyen_signed_string(item), hashlib.sha256).digest()
        item["additionalData"] = {"hmacSignature": base64.b64encode(mac).decode()}
        return orjson.dumps({"live": "false",
                             "notificationItems": [{"NotificationRequestItem": item}]})
