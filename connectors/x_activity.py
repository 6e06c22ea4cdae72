"""X (Twitter) Account Activity webhooks: ``X-Twitter-Webhooks-Signature-OAuth2`` (the
app's OAuth 2.0 client secret) or the legacy ``X-Twitter-Webhooks-Signature`` (the OAuth
1.0 consumer secret), ``sha256=`` + base64 HMAC-SHA256 of the raw body. Configure the
client secret when the app has one: X signs its challenge answers with it too.

The challenge (CRC): ``GET ?crc_token=`` is answered ``{"response_token": "sha256=" +
base64 HMAC-SHA256(secret, crc_token)}``, which is exactly the signature of a delivery
whose body is the token: a signing oracle for anyone who can reach the URL. So only tokens
of X's own shape are answered (base64url-like text, never JSON); anything else gets 400,
which X treats as a temporary failure, never as a wrong answer.

A delivery's event type is the name of its ``*_events`` (or ``user_event``) key, or, in
the X Activity API's envelope, ``data.event_type``. No delivery id: deduplication is on the
body's hash. X counts anything but 200 as a failed delivery. Facts and sources:
docs/research/providers/x_activity.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any

import orjson

from connectors.presets import Preset, PresetConnector
from connectors.request import EventDraft, HandshakeReply, InboundRequest, json_pointer
from connectors.signing import HmacScheme
from connectors.verification import Verification

_TOKEN = re.compile(r"[A-Za-z0-9_=-]{1,256}")  # X's tokens: base64url of a UUID

PRESET = Preset(
    "x_activity",
    HmacScheme("X-Twitter-Webhooks-Signature-OAuth2",
               fallback_header="X-Twitter-Webhooks-Signature", encoding="base64",
               prefix="sha256="),
    acknowledgement=HandshakeReply(200, b"", "text/plain"),
    sample={"for_user_id": "2244994945", "favorite_events": [
        {"id": "a7ba59eab0bfcba386f7acedac279542", "timestamp_ms": 1522082006140}]})


def response_token(secret: bytes, token: str) -> str:
    """The CRC answer's ``response_token`` for ``token``."""
    mac = hmac.new(secret, token.encode(), hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(mac).decode()


class XActivityConnector(PresetConnector):
    preset = PRESET
    source = "x_activity"
    verification = Verification(
        scheme="HMAC-SHA256 base64",
        proof="`X-Twitter-Webhooks-Signature-OAuth2` (or `X-Twitter-Webhooks-Signature`) "
              "'sha256='",
        covers="`{body}`",
        window="none signed",
        dedup="body SHA-256",
        handshake="`GET ?crc_token=` answered `response_token` (tokens of X's shape only: "
                  "the answer would sign any body); deliveries answered 200",
        vectors="twitter-autohook (X's own npm library) test vectors and `validateWebhook` "
                "(recorded; X's Python SDK has no verifier)",
    )

    def challenge(self, request: InboundRequest) -> HandshakeReply | None:
        token = request.query.get("crc_token")
        if request.method != "GET" or token is None:
            return None
        if not _TOKEN.fullmatch(token):
            return HandshakeReply(400, b'{"error":"rejected","detail":"crc_token"}')
        body = orjson.dumps({"response_token": response_token(self.keys[0], token)})
        return HandshakeReply(200, body)

    def _event(self, request: InboundRequest, payload: dict[str, Any]) -> EventDraft:
        kind = next((k for k in payload if k.endswith("_events") or k == "user_event"), None)
        if kind is None:
            kind = json_pointer(payload, "/data/event_type")
        return EventDraft(type=kind if isinstance(kind, str) and kind else "x_activity.event",
                          payload=payload)
