"""Twilio: ``X-Twilio-Signature`` = base64 HMAC-SHA1(auth token, URL + sorted form params).

The URL is the one Twilio calls, exactly: ``public_url`` (required), plus the query string
as received unless ``public_url`` already holds one. JSON bodies are covered through the
``bodySHA256`` query parameter, which must equal the body's SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit

from connectors.base import Webhook
from connectors.errors import SignatureError, Unnormalizable
from connectors.options import SecretRequired
from connectors.request import EventDraft, InboundRequest, body_replay_key, with_query
from connectors.signing import matches_any, sorted_params
from connectors.verification import Verification

_DEFAULT_PORTS = {"https": 443, "http": 80}


def _port_variants(url: str) -> list[str]:
    """``url`` with the scheme's default port written out and left out: Twilio may sign
    either, and its RequestValidator accepts both."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        return [url]
    if default is None or port not in (None, default):
        return [url]
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    return [urlunsplit(parts._replace(netloc=f"{prefix}{host}")),
            urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}"))]


class TwilioConfig(SecretRequired):
    public_url: str  # the URL configured in Twilio, exactly


def _form(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(body.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        return []


class TwilioConnector(Webhook[TwilioConfig]):
    source: ClassVar[str] = "twilio"
    verification = Verification(
        scheme="HMAC-SHA1 base64",
        proof="`X-Twilio-Signature`",
        covers=("`public_url` (with or without the default port) + sorted form params; JSON: "
                "`bodySHA256` in the URL"),
        window="none",
        dedup="`I-Twilio-Idempotency-Token`",
        vectors="published (Twilio docs) + twilio-python test vectors + RequestValidator",
    )
    Config = TwilioConfig
    HEADER = "X-Twilio-Signature"

    def _url(self, request: InboundRequest) -> str:
        return with_query(self.config.public_url or "", request.url)

    def _is_json(self, request: InboundRequest) -> bool:
        return (request.header("content-type") or "").split(";")[0].strip().lower() == \
            "application/json"

    def _message(self, url: str, request: InboundRequest) -> bytes:
        if self._is_json(request):
            return url.encode()
        return (url + sorted_params(_form(request.body))).encode()

    async def verify(self, request: InboundRequest) -> None:
        raw = request.header(self.HEADER)
        if not raw:
            raise SignatureError("signature header is missing", reason="missing_signature")
        url = self._url(request)
        if self._is_json(request):
            declared = parse_qs(url.partition("?")[2]).get("bodySHA256", [""])[0]
            if not hmac.compare_digest(declared.encode(),
                                       hashlib.sha256(request.body).hexdigest().encode()):
                raise SignatureError("bodySHA256 does not match the body")
        messages = [self._message(u, request) for u in _port_variants(url)]
        expected = (base64.b64encode(hmac.new(secret, message, hashlib.sha1).digest())
                    for secret in self.secrets for message in messages)
        if not matches_any(expected, [raw.strip().encode()]):
            raise SignatureError("signature does not match")

    def delivery_id(self, request: InboundRequest) -> str:
        return request.header("I-Twilio-Idempotency-Token") or super().delivery_id(request)

    def replay_key(self, request: InboundRequest) -> str | None:
        # I-Twilio-Idempotency-Token is not signed; the URL and the parameters are.
        return body_replay_key(request) if request.header("I-Twilio-Idempotency-Token") \
            else None

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        payload: dict[str, Any]
        if self._is_json(request):
            payload = request.json_object()
        else:
            try:
                payload = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
            except UnicodeDecodeError:
                raise Unnormalizable("form body is not UTF-8") from None
        if "MessageSid" in payload or "SmsSid" in payload:
            status = payload.get("MessageStatus") or payload.get("SmsStatus") or "received"
            etype = f"message.{str(status).lower()}"
        elif "CallSid" in payload:
            etype = f"call.{str(payload.get('CallStatus') or 'event').lower()}"
        else:
            etype = "twilio.event"
        return [EventDraft(type=etype, payload=payload)]

    def sign(self, body: bytes) -> dict[str, str]:
        fake = InboundRequest("POST", self.config.public_url or "",
                              {"content-type": "application/x-www-form-urlencoded"}, {}, body,
                              None, datetime.now(UTC))
        mac = hmac.new(self.secrets[0], self._message(self._url(fake), fake), hashlib.sha1)
        return {"Content-Type": "application/x-www-form-urlencoded",
                self.HEADER: base64.b64encode(mac.digest()).decode()}

    def sample_body(self) -> bytes:
        return b"MessageSid=SM00000000000000000000000000000000&MessageStatus=delivered" \
               b"&From=%2B15550000000&To=%2B15551111111"

