"""Braintree webhooks: a form with ``bt_signature`` and ``bt_payload``, as the official SDK
(``braintree``, ``WebhookNotificationGateway.parse``) checks them.

- ``bt_payload`` is base64 of an XML ``<notification>`` (kind, timestamp, subject);
- ``bt_signature`` is ``<public key>|<hex HMAC-SHA1>`` pairs joined by ``&``, the HMAC
  keyed with SHA-1 of the API private key, over the payload (or the payload plus a
  newline, which the SDK accepts too).

``secret`` is the API private key (``secrets``: several during a rotation); every pair
is compared with every key in constant time, so the public key that labels a pair decides
nothing. ``public_key`` (the API public key) is needed only to answer the legacy
``GET ?bt_challenge=`` destination check. The payload carries no delivery id and no
signed time window: deduplication is on the body's hash. Facts and sources:
docs/research/providers/braintree.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlencode

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from connectors.base import Webhook
from connectors.errors import SignatureError, Unnormalizable
from connectors.options import SecretRequired
from connectors.request import EventDraft, HandshakeReply, InboundRequest, parse_time
from connectors.signing import matches_any
from connectors.verification import Verification

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

_PAYLOAD = re.compile(rb"[A-Za-z0-9+=/\n]+")  # what the SDK accepts as a payload
_CHALLENGE = re.compile(r"[a-f0-9]{20,32}")
FORM = "application/x-www-form-urlencoded"


def _mac(private_key: bytes, message: bytes) -> str:
    key = hashlib.sha1(private_key).digest()  # noqa: S324 - Braintree's scheme
    return hmac.new(key, message, hashlib.sha1).hexdigest()


def _value(e: Element) -> Any:
    """An element as Braintree's SDK parser reads it (``XmlUtil.dict_from_xml``), dates
    kept as the text they are in."""
    kind = e.get("type")
    children = list(e)
    if kind == "array":
        return [_value(c) for c in children]
    if children:
        out: dict[str, Any] = {}
        for c in children:
            key, value = c.tag.replace("-", "_"), _value(c)
            if key not in out:
                out[key] = value
            elif isinstance(out[key], list) and c.get("type") != "array":
                out[key].append(value)
            else:
                out[key] = [out[key], value]
        return out
    text = (e.text or "").strip()
    if e.get("nil") == "true":
        return None
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise Unnormalizable(f"<{e.tag}> is not an integer") from None
    if kind == "boolean":
        return text in ("true", "1")
    return text


def notification(payload: bytes) -> dict[str, Any]:
    """The ``<notification>`` in a ``bt_payload``, as a dict."""
    try:
        document = base64.b64decode(payload)
    except (ValueError, binascii.Error):
        raise Unnormalizable("bt_payload is not base64") from None
    try:  # no DTD, entity or external reference: Braintree sends none
        root = fromstring(document, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise Unnormalizable(f"bt_payload is refused: {type(exc).__name__}") from None
    except ParseError as exc:
        raise Unnormalizable(f"bt_payload is not XML: {exc}") from None
    if root.tag != "notification":
        raise Unnormalizable(f"bt_payload holds <{root.tag}>, not <notification>")
    value = _value(root)
    if not isinstance(value, dict):
        raise Unnormalizable("<notification> is empty")
    return value


class BraintreeConnector(Webhook[SecretRequired]):
    source: ClassVar[str] = "braintree"
    verification = Verification(
        scheme="HMAC-SHA1 hex, key SHA-1(API private key)",
        proof="form field `bt_signature` (`public_key|signature` pairs joined by `&`)",
        covers="form field `bt_payload` (base64 XML), with or without a trailing newline",
        window="none signed (the notification's `timestamp` is inside the payload)",
        dedup="body SHA-256",
        handshake="`GET ?bt_challenge=` answered `public_key|HMAC` when `public_key` is set",
        vectors="braintree SDK: `webhook_testing.sample_notification` signs, "
                "`webhook_notification.parse` and `verify` check",
    )
    Config = SecretRequired

    def _fields(self, request: InboundRequest) -> tuple[str, bytes]:
        try:
            form = dict(parse_qsl(request.body.decode("ascii"), keep_blank_values=True))
        except UnicodeDecodeError:
            form = {}
        signature, payload = form.get("bt_signature", ""), form.get("bt_payload", "")
        if not signature or not payload:
            raise SignatureError("bt_signature or bt_payload is missing",
                                 reason="missing_signature")
        return signature, payload.encode()

    async def verify(self, request: InboundRequest) -> None:
        signature, payload = self._fields(request)
        if not _PAYLOAD.fullmatch(payload):
            raise SignatureError("bt_payload contains characters outside base64")
        given = [pair.partition("|")[2].strip().lower().encode()
                 for pair in signature.split("&") if "|" in pair]
        expected = (_mac(key, message).encode() for key in self.secrets
                    for message in (payload, payload + b"\n"))
        if not given or not matches_any(expected, given):
            raise SignatureError("signature does not match")

    def challenge(self, request: InboundRequest) -> HandshakeReply | None:
        public_key = self.config.public_key
        if request.method != "GET" or "bt_challenge" not in request.query or not public_key:
            return None  # a GET without the check, or not configured for it: 405
        challenge = request.query["bt_challenge"]
        if not _CHALLENGE.fullmatch(challenge):
            return HandshakeReply(400, b"bt_challenge is not 20 to 32 hex digits",
                                  "text/plain")
        reply = f"{public_key}|{_mac(self.secrets[0], challenge.encode())}"
        return HandshakeReply(200, reply.encode(), "text/plain")

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        _, payload = self._fields(request)
        body = notification(payload)
        kind = body.get("kind")
        return [EventDraft(type=kind if isinstance(kind, str) and kind else "braintree.event",
                           payload=body, timestamp=parse_time(body.get("timestamp")))]

    def signed_form(self, payload: bytes, public_key: str = "public_key") -> bytes:
        """A form body as Braintree sends it for ``payload`` (a base64 XML notification)."""
        pair = f"{self.config.public_key or public_key}|{_mac(self.secrets[0], payload)}"
        return urlencode({"bt_signature": pair, "bt_payload": payload.decode()}).encode()

    def sign(self, body: bytes) -> dict[str, str]:
        return {"Content-Type": FORM}  # the proof rides in the body: ``signed_form``

    def sample_body(self) -> bytes:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        xml = (f'<notification><timestamp type="datetime">{stamp}</timestamp>'
               "<kind>check</kind><subject><check type=\"boolean\">true</check></subject>"
               "</notification>")
        return self.signed_form(base64.encodebytes(xml.encode()))
