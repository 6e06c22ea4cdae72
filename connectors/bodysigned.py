"""Providers whose proof travels inside the body rather than in a header.

    mailgun           ``signature: {timestamp, token, signature}``: hex HMAC-SHA256 of
                      ``timestamp + token`` with the webhook signing key. It does not cover
                      the event, so the token is the delivery id: inside the dedup window a
                      token is accepted once, which is the single use Mailgun recommends.
    microsoft_graph   every notification carries the subscription's ``clientState``
                      (the configured ``secret``); it is compared in constant time and
                      removed from the payload. ``?validationToken=`` is echoed as text.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import ClassVar

import orjson

from connectors.base import (
    Connector,
    EventDraft,
    HandshakeReply,
    InboundRequest,
    SecretRequired,
    parse_time,
)
from connectors.signing import matches_any
from gateway.errors import SignatureError, Unnormalizable


class MailgunConnector(Connector):
    source: ClassVar[str] = "mailgun"
    Config = SecretRequired
    DEFAULT_TOLERANCE = 900  # the official SDK's max_age_seconds

    def verify(self, request: InboundRequest) -> None:
        body = request.json_or_none()
        sig = body.get("signature") if isinstance(body, dict) else None
        if not isinstance(sig, dict) or not all(
                isinstance(sig.get(k), str | int) for k in ("timestamp", "token", "signature")):
            raise SignatureError("signature object is missing", reason="missing_signature")
        stamp, token = str(sig["timestamp"]), str(sig["token"])
        if not stamp.isdigit():
            raise SignatureError("timestamp is malformed", reason="missing_signature")
        tolerance = self.config.tolerance_seconds
        window = self.DEFAULT_TOLERANCE if tolerance is None else tolerance
        if abs(time.time() - int(stamp)) > window:
            raise SignatureError("timestamp is outside the replay window",
                                 reason="stale_timestamp")
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


class GraphConnector(Connector):
    source: ClassVar[str] = "microsoft_graph"
    Config = SecretRequired  # secret: the subscription's clientState

    def challenge(self, request: InboundRequest) -> HandshakeReply | None:
        token = request.query.get("validationToken")
        if token is None:
            return None
        return HandshakeReply(200, token.encode(), "text/plain",
                              {"X-Content-Type-Options": "nosniff"})

    def verify(self, request: InboundRequest) -> None:
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
