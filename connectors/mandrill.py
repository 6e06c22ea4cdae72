"""Mailchimp Transactional (Mandrill) webhooks: ``X-Mandrill-Signature`` is base64
HMAC-SHA1(webhook key, URL + the POSTed form parameters sorted by name, each as
``namevalue``), the URL exactly as entered in Mailchimp (``public_url``, required: query
string and trailing slash included). The one parameter, ``mandrill_events``, holds a JSON
array of up to 1000 events: one event each. Adding a webhook sends an unsigned ``HEAD``
first (answered 200, publishing nothing). No timestamp, no delivery id: deduplication is
on the body's hash. Facts and sources: docs/research/providers/mandrill.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode

import orjson

from connectors.base import Webhook
from connectors.errors import SignatureError, Unnormalizable
from connectors.options import SecretRequired
from connectors.request import EventDraft, HandshakeReply, InboundRequest, parse_time
from connectors.signing import matches_any, sorted_params
from connectors.verification import Verification

SIGNATURE = "X-Mandrill-Signature"
FORM = "application/x-www-form-urlencoded"


class MandrillConfig(SecretRequired):
    public_url: str  # the webhook URL entered in Mailchimp, exactly


def signed_string(url: str, body: bytes) -> bytes:
    """What Mandrill signs: the URL, then each form parameter as ``namevalue``, sorted."""
    try:
        params = parse_qsl(body.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        raise SignatureError("the form body is not UTF-8") from None
    return (url + sorted_params(params)).encode()


def signature(key: bytes, url: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(key, signed_string(url, body), hashlib.sha1).digest()
                            ).decode()


class MandrillConnector(Webhook[MandrillConfig]):
    """``secret`` is the webhook's key (shown once the webhook exists; not the API key)."""

    source: ClassVar[str] = "mandrill"
    verification = Verification(
        scheme="HMAC-SHA1 base64 (key: the webhook's key)",
        proof=f"`{SIGNATURE}`",
        covers="`public_url` + the form parameters sorted by name (`namevalue`)",
        window="none",
        dedup="body SHA-256",
        handshake="the unsigned `HEAD` sent when a webhook is added answered 200; nothing "
                  "published",
        vectors="the documented algorithm; django-anymail's verifier (community) accepted "
                "them: Mailchimp's SDKs have no verifier",
    )
    Config = MandrillConfig

    def challenge(self, request: InboundRequest) -> HandshakeReply | None:
        return HandshakeReply(200, b"", "text/plain") if request.method == "HEAD" else None

    async def verify(self, request: InboundRequest) -> None:
        given = (request.header(SIGNATURE) or "").strip()
        if not given:
            raise SignatureError("signature header is missing", reason="missing_signature")
        expected = (signature(key, self.config.public_url, request.body).encode()
                    for key in self.secrets)
        if not matches_any(expected, [given.encode()]):
            raise SignatureError("signature does not match")

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        form = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
        try:
            events: Any = orjson.loads(form.get("mandrill_events", ""))
        except orjson.JSONDecodeError:
            raise Unnormalizable("mandrill_events is not JSON") from None
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise Unnormalizable("mandrill_events is not a JSON array of events")
        return [self._event(e) for e in events]

    def _event(self, event: dict[str, Any]) -> EventDraft:
        kind = event.get("event")
        if not isinstance(kind, str) or not kind:  # a sync event: type and action
            parts = [event.get("type"), event.get("action")]
            kind = ".".join(p for p in parts if isinstance(p, str) and p) or "mandrill.event"
        return EventDraft(type=kind, payload=event, timestamp=parse_time(event.get("ts")))

    def sign(self, body: bytes) -> dict[str, str]:
        return {"Content-Type": FORM,
                SIGNATURE: signature(self.secrets[0], self.config.public_url, body)}

    def sample_body(self) -> bytes:
        event = {"event": "send", "_id": "0123456789abcdef0123456789abcdef",
                 "ts": int(datetime.now(UTC).timestamp()),
                 "msg": {"email": "recipient@example.com", "subject": "Hello"}}
        return urlencode({"mandrill_events": orjson.dumps([event]).decode()}).encode()
