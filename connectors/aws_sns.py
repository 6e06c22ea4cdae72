"""AWS SNS over HTTPS: RSA signatures (versions 1 = SHA1withRSA, 2 = SHA256withRSA).

The signature is in the JSON body, over ``name\\nvalue\\n`` pairs of the message's fields.
The key is the X.509 certificate at ``SigningCertURL``, which must be exactly
``https://sns.<region>.amazonaws.com[.cn]/<path>.pem``: no query, fragment, credentials or
port, nothing but printable ASCII; any other URL is refused (401) before a request is made.

Certificates are fetched with httpx into a bounded LRU cache (``CERT_CACHE_SIZE``). One
fetch per URL at a time: concurrent deliveries naming the same URL wait for the same
task (shielded, so a sender hanging up does not cancel it for the others). A fetch that
failed is remembered for ``FAILED_FETCH_TTL`` seconds: deliveries naming that URL meanwhile
get the same answer (503 with Retry-After, or 401 for a certificate that is not RSA)
without a request.

``SubscriptionConfirmation`` is confirmed (GET ``SubscribeURL``, after the same host
check; a query is allowed there, it carries the token) only when
``confirm_subscriptions: true``. ``Timestamp`` must be RFC 3339 and inside the replay
window: ``tolerance_seconds``, else SNS's one-hour retry limit plus five minutes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import math
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
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
from connectors.errors import GatewayError, SignatureError, Unavailable
from connectors.options import ConnectorConfig
from connectors.request import EventDraft, HandshakeReply, InboundRequest, parse_time
from connectors.timestamps import CLOCK_SKEW, ReplayWindow, parse_rfc3339_seconds

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
FAILED_FETCH_TTL = 60.0  # seconds a URL whose fetch failed is not fetched again
FAILED_CACHE_SIZE = 256


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


@dataclass(frozen=True, slots=True)
class _Failure:
    """A fetch that failed, and the answer deliveries naming its URL get until ``until``
    (``time.monotonic``): 503 when ``retriable``, else 401."""

    until: float
    retriable: bool
    detail: str

    def error(self) -> GatewayError:
        if self.retriable:
            wait = max(1, math.ceil(self.until - time.monotonic()))
            return Unavailable(self.detail, retry_after=wait)
        return SignatureError(self.detail)


class SnsConnector(Webhook[SnsConfig]):
    source: ClassVar[str] = "aws_sns"
    Config = SnsConfig

    def __init__(self, connector_id: str, config: SnsConfig) -> None:
        super().__init__(connector_id, config)
        self.transport: httpx.AsyncBaseTransport | None = None  # tests inject one
        self.failed_fetch_ttl = FAILED_FETCH_TTL
        self._client: httpx.AsyncClient | None = None
        self._certs: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()  # LRU order
        self._fetches: dict[str, asyncio.Task[rsa.RSAPublicKey | _Failure]] = {}
        self._failures: dict[str, _Failure] = {}

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=5.0, transport=self.transport,
                                             follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

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
        self._check(message, await self._certificate(url))

    async def _certificate(self, url: str) -> rsa.RSAPublicKey:
        """The certificate's key: cached, else fetched once for every delivery waiting."""
        key = self._certs.get(url)
        if key is not None:
            self._certs.move_to_end(url)
            return key
        failure = self._failures.get(url)
        if failure is not None:
            if failure.until > time.monotonic():
                raise failure.error()
            del self._failures[url]
        loop = asyncio.get_running_loop()
        task = self._fetches.get(url)
        if task is None or task.cancelled() or task.get_loop() is not loop:
            task = loop.create_task(self._fetch(url))
            self._fetches[url] = task
            task.add_done_callback(lambda done: self._fetch_done(url, done))
        result = await asyncio.shield(task)  # a waiter cancelled leaves the fetch running
        if isinstance(result, _Failure):
            raise result.error()
        return result

    def _fetch_done(self, url: str, task: asyncio.Task[rsa.RSAPublicKey | _Failure]) -> None:
        if self._fetches.get(url) is task:
            del self._fetches[url]
        if not task.cancelled():
            task.exception()  # retrieved here too: the waiters may all have gone

    async def _fetch(self, url: str) -> rsa.RSAPublicKey | _Failure:
        try:
            response = await self._http().get(url)
            response.raise_for_status()
            key = x509.load_pem_x509_certificate(response.content).public_key()
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, UnsupportedAlgorithm) as exc:
            return self._failed(url, True, "cannot fetch the SNS signing certificate: "
                                f"{type(exc).__name__}")
        if not isinstance(key, rsa.RSAPublicKey):
            return self._failed(url, False, "the signing certificate is not an RSA certificate")
        self._certs[url] = key
        while len(self._certs) > CERT_CACHE_SIZE:
            self._certs.popitem(last=False)
        return key

    def _failed(self, url: str, retriable: bool, detail: str) -> _Failure:
        now = time.monotonic()
        failure = _Failure(now + self.failed_fetch_ttl, retriable, detail)
        for old in [u for u, f in self._failures.items() if f.until <= now]:
            del self._failures[old]
        while len(self._failures) >= FAILED_CACHE_SIZE:
            del self._failures[next(iter(self._failures))]
        self._failures[url] = failure
        log.warning("sns_certificate_fetch_failed", connector_id=self.connector_id,
                    detail=detail)
        return failure


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
            (await self._http().get(subscribe)).raise_for_status()
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
