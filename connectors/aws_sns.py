"""AWS SNS over HTTPS: RSA signatures (versions 1 = SHA1withRSA, 2 = SHA256withRSA).

The signature is in the JSON body, over ``name\\nvalue\\n`` pairs of the message's fields.
The key is the X.509 certificate at ``SigningCertURL``, which must be https on an SNS
host of amazonaws.com and end in ``.pem``; certificates are fetched with httpx and cached.
``SubscriptionConfirmation`` is confirmed (GET ``SubscribeURL``, after the same host
check) only when ``confirm_subscriptions: true``.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import orjson
import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from connectors.base import (
    Connector,
    ConnectorConfig,
    EventDraft,
    HandshakeReply,
    InboundRequest,
    parse_time,
)
from gateway.errors import SignatureError, Unavailable

log = structlog.get_logger(__name__)

SNS_HOST = re.compile(r"^sns\.[a-zA-Z0-9\-]{3,}\.amazonaws\.com(\.cn)?$")
NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_KEYS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn",
                     "Type")
CONFIRMATIONS = ("SubscriptionConfirmation", "UnsubscribeConfirmation")


class SnsConfig(ConnectorConfig):
    confirm_subscriptions: bool = False
    topic_arns: list[str] | None = None  # when set, other topics are refused


def string_to_sign(message: dict[str, Any]) -> bytes:
    keys = CONFIRMATION_KEYS if message.get("Type") in CONFIRMATIONS else NOTIFICATION_KEYS
    return "".join(f"{k}\n{message[k]}\n" for k in keys if k in message).encode()


def is_sns_url(url: str, *, pem: bool) -> bool:
    parts = urlsplit(url)
    return (parts.scheme == "https" and bool(SNS_HOST.match(parts.hostname or ""))
            and (not pem or parts.path.endswith(".pem")))


class SnsConnector(Connector):
    source: ClassVar[str] = "aws_sns"
    Config = SnsConfig

    def __init__(self, connector_id: str, config: ConnectorConfig) -> None:
        super().__init__(connector_id, config)
        assert isinstance(config, SnsConfig)
        self.options = config
        self.transport: httpx.AsyncBaseTransport | None = None  # tests inject one
        self._client: httpx.AsyncClient | None = None
        self._certs: dict[str, rsa.RSAPublicKey] = {}

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

    async def authenticate(self, request: InboundRequest) -> None:
        message = self._message(request)
        url = message["SigningCertURL"]
        if not is_sns_url(url, pem=True):
            raise SignatureError("SigningCertURL is not an https .pem URL on an SNS host")
        if url not in self._certs:
            try:
                response = await self._http().get(url)
                response.raise_for_status()
                key = x509.load_pem_x509_certificate(response.content).public_key()
            except (httpx.HTTPError, ValueError) as exc:
                raise Unavailable(f"cannot fetch the SNS signing certificate: "
                                  f"{type(exc).__name__}", retry_after=10) from None
            if not isinstance(key, rsa.RSAPublicKey):
                raise SignatureError("the signing certificate is not an RSA certificate")
            self._certs[url] = key
        self.verify(request)

    def verify(self, request: InboundRequest) -> None:
        message = self._message(request)
        key = self._certs.get(message["SigningCertURL"])
        if key is None:
            raise SignatureError("signing certificate not fetched")
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
        arns = self.options.topic_arns
        if arns is not None and message.get("TopicArn") not in arns:
            raise SignatureError("topic is not in topic_arns")
        window = self.config.tolerance_seconds
        sent = parse_time(message.get("Timestamp"))
        if window is not None and (sent is None or abs(
                (datetime.now(UTC) - sent).total_seconds()) > window):
            raise SignatureError("timestamp is outside the replay window",
                                 reason="stale_timestamp")

    async def respond(self, request: InboundRequest) -> HandshakeReply | None:
        message = self._message(request)
        if message["Type"] == "UnsubscribeConfirmation":
            return HandshakeReply(200, b'{"ok":true}')
        if message["Type"] != "SubscriptionConfirmation":
            return None
        if not self.options.confirm_subscriptions:
            log.warning("sns_subscription_not_confirmed", connector_id=self.connector_id,
                        topic=message.get("TopicArn"))
            return HandshakeReply(200, orjson.dumps({
                "confirmed": False,
                "detail": "set confirm_subscriptions: true, or confirm it in AWS"}))
        subscribe = str(message.get("SubscribeURL", ""))
        if not is_sns_url(subscribe, pem=False):
            raise SignatureError("SubscribeURL is not an https URL on an SNS host")
        try:
            (await self._http().get(subscribe)).raise_for_status()
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
        try:
            body = orjson.loads(body) if isinstance(body, str) else body
        except orjson.JSONDecodeError:
            pass
        payload: dict[str, Any] = {"Message": body}
        for k in ("Subject", "TopicArn", "MessageId", "MessageAttributes", "Timestamp"):
            if k in message:
                payload[k] = message[k]
        return [EventDraft(type="sns.notification", payload=payload,
                           timestamp=parse_time(message.get("Timestamp")))]
