"""PayPal REST webhooks: an RSA signature (``PAYPAL-TRANSMISSION-SIG``, PKCS#1 v1.5 with
``PAYPAL-AUTH-ALGO``: SHA256withRSA, or SHA1withRSA as older deliveries say) over

    <PAYPAL-TRANSMISSION-ID>|<PAYPAL-TRANSMISSION-TIME>|<webhook_id>|<CRC-32 of the body>

(the CRC unsigned, in decimal), checked with the key of the certificate at
``PAYPAL-CERT-URL``, as PayPal's SDKs do (``WebhookEvent.verify``).

- ``webhook_id`` (required) is the id PayPal gave the subscribed URL: deliveries for
  another webhook, PayPal's simulator's among them, are refused.
- The certificate URL must be ``https://api[-m][.sandbox].paypal.com/v1/notifications/
  certs/CERT-...`` exactly (no port, credentials, query or fragment; printable ASCII):
  any other is refused (401) before a request is made. Certificates are fetched over TLS
  from those hosts only by a ``connectors.keyfetch.KeyCache`` (as for SNS), and must
  name ``messageverificationcerts[.sandbox].paypal.com``, be within their validity, and
  hold an RSA key; each is kept until it expires.
- The signature covers the body only through a CRC-32, which anyone can match with
  another body: so the signed transmission id is claimed too (``replay_key``), and a
  captured signature proves one delivery, once. Events are deduplicated on the body's
  event ``id``.
- ``PAYPAL-TRANSMISSION-TIME`` (RFC 3339, signed) must be within 3 days and 5 minutes
  back (PayPal retries for 3 days; ``tolerance_seconds``) and 5 minutes ahead.

Facts and sources: docs/research/providers/paypal.md.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
import time
import zlib
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from connectors.base import Webhook
from connectors.errors import KeyFetchError, SignatureError
from connectors.keyfetch import KeyCache, check_url, fetch_bytes
from connectors.options import ConnectorConfig
from connectors.request import EventDraft, InboundRequest, json_pointer, parse_time
from connectors.timestamps import CLOCK_SKEW, ReplayWindow, parse_rfc3339_seconds
from connectors.verification import Verification

CERT_HOSTS = frozenset({"api.paypal.com", "api-m.paypal.com", "api.sandbox.paypal.com",
                        "api-m.sandbox.paypal.com"})
CERT_PATH = re.compile(r"/v1/notifications/certs/CERT-[0-9A-Za-z-]{1,64}")
CERT_NAMES = frozenset({"messageverificationcerts.paypal.com",
                        "messageverificationcerts.sandbox.paypal.com"})
_URL_CHARS = re.compile(r"[!-~]{1,500}")
ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA256withRSA": hashes.SHA256,
    "SHA1withRSA": hashes.SHA1,  # deliveries of 2014-2015 say so
}
TOLERANCE = 3 * 86400 + CLOCK_SKEW  # PayPal retries a delivery for up to three days
HEADERS = ("PAYPAL-TRANSMISSION-ID", "PAYPAL-TRANSMISSION-TIME", "PAYPAL-TRANSMISSION-SIG",
           "PAYPAL-CERT-URL", "PAYPAL-AUTH-ALGO")


class PayPalConfig(ConnectorConfig):
    webhook_id: str  # the id PayPal gave this webhook (Developer Dashboard, or the API)


def signed_string(transmission_id: str, transmission_time: str, webhook_id: str,
                  body: bytes) -> bytes:
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body)}".encode()


def is_cert_url(url: str) -> bool:
    if not _URL_CHARS.fullmatch(url) or "\\" in url:
        return False
    try:
        check_url(url, CERT_HOSTS)
    except ValueError:
        return False
    return CERT_PATH.fullmatch(urlsplit(url).path) is not None


def certificate_key(pem: bytes, now: float) -> tuple[rsa.RSAPublicKey, float]:
    """The RSA key of PayPal's message verification certificate in ``pem`` (its first
    certificate), and how many seconds it stays valid from ``now``."""
    try:
        cert = x509.load_pem_x509_certificates(pem)[0]
    except (ValueError, IndexError):
        raise KeyFetchError("the PayPal certificate is not PEM", retriable=True) from None
    names = {a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)}
    with contextlib.suppress(x509.ExtensionNotFound):
        names |= set(cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))
    if not names & CERT_NAMES:
        raise KeyFetchError("the certificate is not PayPal's message verification "
                            "certificate", retriable=False)
    left = cert.not_valid_after_utc.timestamp() - now
    if cert.not_valid_before_utc.timestamp() > now + CLOCK_SKEW or left <= 0:
        raise KeyFetchError("the PayPal certificate is not valid now", retriable=False)
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFetchError("the PayPal certificate is not an RSA certificate",
                            retriable=False)
    return key, left


async def _fetch(client: httpx.AsyncClient, url: str) -> tuple[rsa.RSAPublicKey, float]:
    pem, _ = await fetch_bytes(client, url, CERT_HOSTS, "the PayPal certificate")
    return certificate_key(pem, time.time())


class PayPalConnector(Webhook[PayPalConfig]):
    source: ClassVar[str] = "paypal"
    verification = Verification(
        scheme="RSA PKCS#1 v1.5, SHA256 (SHA1 for older deliveries)",
        proof="`PAYPAL-TRANSMISSION-SIG`; key from `PAYPAL-CERT-URL` (https, PayPal's API "
              "hosts, `/v1/notifications/certs/CERT-*`; fetched, cached)",
        covers="`{transmission id}|{transmission time}|{webhook_id}|{CRC-32 of the body}`",
        window="`PAYPAL-TRANSMISSION-TIME`: 3 days + 5 min back, 5 min ahead "
               "(`tolerance_seconds`)",
        dedup="body `/id` (the event id) and the signed transmission id",
        vectors="deliveries recorded in PayPal's own SDKs' tests (Node, Java, .NET, Python), "
                "with their certificates; accepted by paypalrestsdk `WebhookEvent.verify`",
    )
    Config = PayPalConfig

    def __init__(self, connector_id: str, config: PayPalConfig) -> None:
        super().__init__(connector_id, config)
        self.certs: KeyCache[rsa.RSAPublicKey] = KeyCache(
            connector_id, "PayPal certificate", _fetch,
            log_event="paypal_certificate_fetch_failed")

    async def aclose(self) -> None:
        await self.certs.aclose()

    async def verify(self, request: InboundRequest) -> None:
        values = [(request.header(h) or "").strip() for h in HEADERS]
        if not all(values):
            raise SignatureError("a PAYPAL-* transmission header is missing",
                                 reason="missing_signature")
        transmission_id, transmission_time, signature, url, algorithm = values
        digest = ALGORITHMS.get(algorithm)
        if digest is None:
            raise SignatureError("unsupported PAYPAL-AUTH-ALGO")
        if not is_cert_url(url):
            raise SignatureError("PAYPAL-CERT-URL is not a certificate URL on PayPal's hosts")
        ReplayWindow.of(self.config.tolerance_seconds, TOLERANCE, future=CLOCK_SKEW).check(
            parse_rfc3339_seconds(transmission_time), what="PAYPAL-TRANSMISSION-TIME")
        key = await self.certs.get(url)
        message = signed_string(transmission_id, transmission_time, self.config.webhook_id,
                                request.body)
        try:
            key.verify(base64.b64decode(signature, validate=True), message,
                       padding.PKCS1v15(), digest())
        except (InvalidSignature, ValueError, binascii.Error):
            raise SignatureError("signature does not match") from None

    def delivery_id(self, request: InboundRequest) -> str:
        event = json_pointer(request.json_or_none(), "/id")
        return event if isinstance(event, str) and event else super().delivery_id(request)

    def replay_key(self, request: InboundRequest) -> str | None:
        return f"transmission:{(request.header('PAYPAL-TRANSMISSION-ID') or '').strip()}"

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        payload: dict[str, Any] = request.json_object()
        etype = payload.get("event_type")
        return [EventDraft(type=etype if isinstance(etype, str) and etype else "paypal.event",
                           payload=payload, timestamp=parse_time(payload.get("create_time")),
                           raw=request.body)]
