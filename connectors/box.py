"""Box (V2 webhooks): two signatures, one per key, over the body and the delivery time.

    BOX-SIGNATURE-PRIMARY / -SECONDARY   base64 HMAC-SHA256 of body + BOX-DELIVERY-TIMESTAMP,
                                         keyed with the primary / secondary signature key
                                         (config ``secrets: [primary, secondary]``)
    BOX-DELIVERY-TIMESTAMP               RFC 3339; at most 10 minutes old (Box's rule),
                                         at most a minute ahead (clock skew)
    BOX-SIGNATURE-VERSION / -ALGORITHM   "1" / "HmacSHA256" when present

Box signs some bodies with their non-ASCII characters written as ``\\uXXXX`` escapes
while delivering them as UTF-8; its SDK therefore checks both forms, and so does this.
A retry gets a new BOX-DELIVERY-ID but keeps the body's ``id``: that is the dedup key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from datetime import UTC, datetime
from typing import ClassVar

from connectors.base import Webhook
from connectors.errors import SignatureError
from connectors.options import SecretRequired
from connectors.request import EventDraft, InboundRequest, json_pointer, parse_time
from connectors.signing import matches_any
from connectors.timestamps import ReplayWindow, parse_rfc3339_seconds
from connectors.verification import Verification

FUTURE_SKEW = 60


def escape_unicode(text: str) -> str:
    """The body as Box signs it when escaping: as its SDK's ``escape_unicode`` does."""
    def replace(match: re.Match[str]) -> str:
        char = match.group(0)
        if char in "\n\r\t":
            return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char]
        code = ord(char)
        if code <= 0xFFFF:
            return f"\\u{code:04x}"
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"

    doubled = re.sub(r"\\(?!/)", r"\\\\", text)
    return re.sub(r"[^\x20-\x7e]", replace, doubled)


class BoxConnector(Webhook[SecretRequired]):
    source: ClassVar[str] = "box"
    verification = Verification(
        scheme="HMAC-SHA256 base64, one signature per key (`secrets: [primary, secondary]`)",
        proof="`BOX-SIGNATURE-PRIMARY`, `BOX-SIGNATURE-SECONDARY`, `BOX-DELIVERY-TIMESTAMP`",
        covers="`{body}{timestamp}`, the body also in Box's `\\uXXXX`-escaped form",
        window="600 s past, 60 s ahead",
        dedup="body `id` (the delivery id changes on retry)",
        vectors="box-sdk-gen test vector + `compute_webhook_signature` / `validate_message`",
    )
    Config = SecretRequired
    TOLERANCE = 600

    def _messages(self, body: bytes, stamp: str) -> list[bytes]:
        messages = [body + stamp.encode()]
        try:
            text = body.decode()
        except UnicodeDecodeError:
            return messages
        escaped = escape_unicode(text).encode()
        if escaped != body:
            messages.append(escaped + stamp.encode())
        return messages

    async def verify(self, request: InboundRequest) -> None:
        stamp = request.header("box-delivery-timestamp")
        given = [v for v in (request.header("box-signature-primary"),
                             request.header("box-signature-secondary")) if v]
        if not stamp or not given:
            raise SignatureError("signature headers are missing", reason="missing_signature")
        if (request.header("box-signature-version") or "1") != "1" or (
                request.header("box-signature-algorithm") or "HmacSHA256") != "HmacSHA256":
            raise SignatureError("unsupported signature version or algorithm")
        ReplayWindow.of(self.config.tolerance_seconds, self.TOLERANCE,
                        future=FUTURE_SKEW).check(parse_rfc3339_seconds(stamp))
        candidates = []
        for value in given:
            try:
                candidates.append(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                continue
        expected = (hmac.new(key, message, hashlib.sha256).digest()
                    for key in self.secrets for message in self._messages(request.body, stamp))
        if not matches_any(expected, candidates):
            raise SignatureError("signature does not match")

    def delivery_id(self, request: InboundRequest) -> str:
        event = json_pointer(request.json_or_none(), "/id")
        return f"event:{event}" if isinstance(event, str) and event else (
            super().delivery_id(request))

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        body = request.json_object()
        trigger = body.get("trigger")
        return [EventDraft(type=trigger if isinstance(trigger, str) and trigger
                           else "box.webhook", payload=body,
                           timestamp=parse_time(body.get("created_at")), raw=request.body)]

    def sign(self, body: bytes) -> dict[str, str]:
        stamp = datetime.now(UTC).replace(microsecond=0).isoformat()
        headers = {"BOX-DELIVERY-TIMESTAMP": stamp, "BOX-SIGNATURE-VERSION": "1",
                   "BOX-SIGNATURE-ALGORITHM": "HmacSHA256"}
        for name, key in zip(("BOX-SIGNATURE-PRIMARY", "BOX-SIGNATURE-SECONDARY"),
                             self.secrets, strict=False):
            mac = hmac.new(key, body + stamp.encode(), hashlib.sha256).digest()
            headers[name] = base64.b64encode(mac).decode()
        return headers
