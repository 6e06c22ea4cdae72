"""AWS SNS over HTTPS: RSA signatures (versions 1 = SHA1withRSA, 2 = SHA256withRSA).

The signature is in the JSON body, over ``name\\nvalue\\n`` pairs of the message's fields.
The key is the X.509 certificate at ``SigningCertURL``, which must be exactly
``https://sns.<region>.amazonaws.com[.cn]/<path>.pem``: no query, fragment, credentials or
port, nothing but printable ASCII; any other URL is refused (401) before a request is made.

Certificates are fetched by a ``connectors.keyfetch.KeyCache`` (``CERT_CACHE_SIZE``
entries, least recently used dropped first). One fetch per URL at a time: concurrent
deliveries naming the same URL wait for the same task (shielded, so a sender hanging up
does not cancel it for the others). A fetch that failed is remembered for a minute:
deliveries naming that URL meanwhile get the same answer (503 with Retry-After, or 401
for a certificate that is not RSA) without a request.

``SubscriptionConfirmation`` is confirmed (GET ``SubscribeURL``, after the same host
check; a query is allowed there, it carries the token) only when
``confirm_subscriptions: true``. ``Timestamp`` must be RFC 3339 and inside the replay
window: ``tolerance_seconds``, else SNS's one-hour retry limit plus five minutes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import math
import re
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import orjson
import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from connectors.base import Webhook
from connectors.errors import KeyFetchError, SignatureError, Unavailable
from connectors.keyfetch import KeyCache
from connectors.options import ConnectorConfig
from connectors.request import EventDraft, HandshakeReply, InboundRequest, parse_time
from connectors.timestamps import CLOCK_SKEW, ReplayWindow, parse_rfc3339_seconds
from connectors.verification import Verification

log = structlog.get_logger(__name__)

SNS_HOST = re.compile(r"sns\.[a-z0-9\-]{3,}\.amazonaws\.com(\.cn)?", re.IGNORECASE)
_URL_CHARS = re.compile(r"[!-~]{1,2048}")  # printable ASCII, no space, bounded
# SNS retries an HTTP/S delivery for at most 3,600 seconds (a hard limit of its delivery
# policies), resending the message signed at its Timestamp.
TOLERANCE = 3600 + CLOCK_SKEW
NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_KEYS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn",
                     "Type")
CONFIRMATIONS = ("SubscriptionConfirmation", "UnsubscribeConfirmation")
CERT_CACHE_SIZE = 32  # certificates kept, least recently used dropped first


class SnsConfig(ConnectorConfig):
    confirm_subscriptions: bool = False
    topic_arns: list[str] | None = None  # when set, other topics are refused


def string_to_sign(message: dict[str, Any]) -> bytes:
    keys = CONFIRMATION_KEYS if message.get("Type") in CONFIRMATIONS else NOTIFICATION_KEYS
    return "".join(f"{k}\n{message[k]}\n" for k in keys if k in message).encode()


def is_sns_url(url: object, *, pem: bool) -> bool:
    """``https://sns.<region>.amazonaws.com[.cn]/...`` and nothing more: an SNS host alone
    in the authority (no credentials, no port), no fragment, printable ASCII. A
    certificate URL (``pem``) has no query either, and its path ends in ``.pem``."""
    if not isinstance(url, str) or not url.startswith("https://") or (
            not _URL_CHARS.fullmatch(url) or "#" in url or "\\" in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:  # "https://[sns..." and the like
        return False
    if not SNS_HOST.fullmatch(parts.netloc):
        return False
    return not pem or ("?" not in url and parts.path.endswith(".pem"))


async def _certificate_key(client: httpx.AsyncClient, url: str
                           ) -> tuple[rsa.RSAPublicKey, float]:
    """The RSA key of the certificate at ``url`` (checked by ``is_sns_url``), kept until
    the cache drops it: SNS signs with it for as long as the URL names it."""
    try:
        response = await client.get(url)
        response.raise_for_status()
        key = x509.load_pem_x509_certificate(response.content).public_key()
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFetchError("cannot fetch the SNS signing certificate: "
                            f"{type(exc).__name__}", retriable=True) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFetchError("the signing certificate is not an RSA certificate",
                            retriable=False)
    return key, math.inf


class SnsConnector(Webhook[SnsConfig]):
    source: ClassVar[str] = "aws_sns"
    verification = Verification(
        scheme="RSA PKCS#1 v1.5, SHA1 (v1) / SHA256 (v2)",
        proof=("body `Signature`; key from `SigningCertURL` (https, `sns.*.amazonaws.com`, "
               "`.pem`; fetched, cached)"),
        covers="the documented `name\\nvalue\\n` pairs",
        window="`Timestamp`: 1 h + 5 min back, 5 min ahead (`tolerance_seconds`)",
        dedup="`MessageId`",
        handshake=("SubscriptionConfirmation confirmed (GET `SubscribeURL`, SNS hosts only) with "
                   "`confirm_subscriptions: true`"),
        vectors=("AWS's published string-to-sign example; generated RSA/X.509 pair (AWS "
                 "publishes no signature)"),
    )
    Config = SnsConfig

    def __init__(self, connector_id: str, config: SnsConfig) -> None:
        super().__init__(connector_id, config)
        # Certificates by URL; no fetch budget: only .pem URLs on SNS hosts are fetched.
        self.certs: KeyCache[rsa.RSAPublicKey] = KeyCache(
            connector_id, "SNS signing certificate", _certificate_key, size=CERT_CACHE_SIZE,
            fetches_per_minute=None, log_event="sns_certificate_fetch_failed")

    async def aclose(self) -> None:
        await self.certs.aclose()

    @staticmethod
    def _message(request: InboundRequest) -> dict[str, Any]:
        message = request.json_or_none()
        if not isinstance(message, dict) or not all(
                isinstance(message.get(k), str) for k in ("Signature", "SigningCertURL", "Type")):
            raise SignatureError("not a signed SNS message", reason="missing_signature")
        return message

    async def verify(self, request: InboundRequest) -> None:
        message = self._message(request)
        url = message["SigningCertURL"]
        if not is_sns_url(url, pem=True):
            raise SignatureError("SigningCertURL is not an https .pem URL on an SNS host")
        self._check(message, await self.certs.get(url))

    def _check(self, message: dict[str, Any], key: rsa.RSAPublicKey) -> None:
        version = message.get("SignatureVersion")
        algorithm: hashes.HashAlgorithm
        if version == "1":
            algorithm = hashes.SHA1()  # noqa: S303 - SNS signature version 1 is SHA1withRSA
        elif version == "2":
            algorithm = hashes.SHA256()
        else:
            raise SignatureError("unsupported SignatureVersion")
        try:
            key.verify(base64.b64decode(message["Signature"], validate=True),
                       string_to_sign(message), padding.PKCS1v15(), algorithm)
        except (InvalidSignature, ValueError, binascii.Error):
            raise SignatureError("signature does not match") from None
        arns = self.config.topic_arns
        if arns is not None and message.get("TopicArn") not in arns:
            raise SignatureError("topic is not in topic_arns")
        ReplayWindow.of(self.config.tolerance_seconds, TOLERANCE, future=CLOCK_SKEW).check(
            parse_rfc3339_seconds(message.get("Timestamp")), what="Timestamp")

    async def handshake(self, request: InboundRequest) -> HandshakeReply | None:
        message = self._message(request)
        if message["Type"] == "UnsubscribeConfirmation":
            return HandshakeReply(200, b'{"ok":true}')
        if message["Type"] != "SubscriptionConfirmation":
            return None
        if not self.config.confirm_subscriptions:
            log.warning("sns_subscription_not_confirmed", connector_id=self.connector_id,
                        topic=message.get("TopicArn"))
            return HandshakeReply(200, orjson.dumps({
                "confirmed": False,
                "detail": "set confirm_subscriptions: true, or confirm it in AWS"}))
        subscribe = message.get("SubscribeURL")
        if not isinstance(subscribe, str) or not is_sns_url(subscribe, pem=False):
            raise SignatureError("SubscribeURL is not an https URL on an SNS host")
        try:
            (await self.certs.http().get(subscribe)).raise_for_status()
        except httpx.InvalidURL:
            raise SignatureError("SubscribeURL is not a valid URL") from None
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot confirm the subscription: {type(exc).__name__}",
                              retry_after=10) from None
        log.info("sns_subscription_confirmed", connector_id=self.connector_id,
                 topic=message.get("TopicArn"))
        return HandshakeReply(200, b'{"confirmed":true}')

    def delivery_id(self, request: InboundRequest) -> str:
        message = self._message(request)
        return str(message.get("MessageId") or super().delivery_id(request))

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        message = self._message(request)
        body: Any = message.get("Message")
        with contextlib.suppress(orjson.JSONDecodeError):
            body = orjson.loads(body) if isinstance(body, str) else body
        payload: dict[str, Any] = {"Message": body}
        for k in ("Subject", "TopicArn", "MessageId", "MessageAttributes", "Timestamp"):
            if k in message:
                payload[k] = message[k]
        return [EventDraft(type="sns.notification", payload=payload,
                           timestamp=parse_time(message.get("Timestamp")))]
