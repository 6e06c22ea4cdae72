"""AWS SNS: the documented string to sign, RSA v1/v2, certificate URL rules, confirmation.

AWS publishes no real signature (only an example string to sign, checked first), and no
Python verifier; messages here are signed with a generated RSA key whose self-signed
certificate is served through httpx.MockTransport (this is a unit test of one piece).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from connectors.aws_sns import SnsConnector, string_to_sign
from connectors.base import InboundRequest
from gateway.errors import SignatureError, Unavailable

CERT_URL = "https://sns.us-east-2.amazonaws.com/SimpleNotificationService-abc.pem"
TOPIC = "arn:aws:sns:us-east-2:123456789012:MyTopic"


def test_the_documented_string_to_sign() -> None:
    # docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html example
    message = {"Message": "My Test Message", "MessageId": "4d4dc071-ddbf-465d-bba8-08f81c89da64",
               "Subject": "My subject", "Timestamp": "2012-06-05T04:37:04.321Z",
               "TopicArn": "arn:aws:sns:us-east-2:123456789012:s4-MySNSTopic-1G1WEFCOXTC0P",
               "Type": "Notification", "Signature": "ignored", "UnsubscribeURL": "ignored"}
    assert string_to_sign(message) == (
        b"Message\nMy Test Message\nMessageId\n4d4dc071-ddbf-465d-bba8-08f81c89da64\n"
        b"Subject\nMy subject\nTimestamp\n2012-06-05T04:37:04.321Z\n"
        b"TopicArn\narn:aws:sns:us-east-2:123456789012:s4-MySNSTopic-1G1WEFCOXTC0P\n"
        b"Type\nNotification\n")


class Fake:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.now(UTC)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(1)
                     .not_valid_before(now - dt.timedelta(days=1))
                     .not_valid_after(now + dt.timedelta(days=1))
                     .sign(self.key, hashes.SHA256()))
        self.requests: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        if str(request.url) == CERT_URL:
            return httpx.Response(200, content=self.cert.public_bytes(serialization.Encoding.PEM))
        if "Action=ConfirmSubscription" in str(request.url):
            return httpx.Response(200, content=b"<ConfirmSubscriptionResponse/>")
        return httpx.Response(404)

    def message(self, kind: str = "Notification", version: str = "1",
                **fields: Any) -> dict[str, Any]:
        m: dict[str, Any] = {"Type": kind, "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
                             "TopicArn": TOPIC, "Message": '{"order": 7}',
                             "Timestamp": datetime.now(UTC).isoformat(timespec="milliseconds")
                             .replace("+00:00", "Z"),
                             "SignatureVersion": version, "SigningCertURL": CERT_URL}
        if kind != "Notification":
            m.update(Token="2336412f37", SubscribeURL="https://sns.us-east-2.amazonaws.com/"
                     "?Action=ConfirmSubscription&TopicArn=x&Token=2336412f37")
        m.update(fields)
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303
        m["Signature"] = base64.b64encode(self.key.sign(string_to_sign(m), padding.PKCS1v15(),
                                                        digest)).decode()
        return m


def connector(fake: Fake, **config: Any) -> SnsConnector:
    c = SnsConnector("sns", SnsConnector.Config.model_validate(config))
    c.transport = httpx.MockTransport(fake.handler)
    return c


def request(message: dict[str, Any]) -> InboundRequest:
    return InboundRequest("POST", "http://gw/webhooks/sns", {"content-type": "text/plain"}, {},
                          orjson.dumps(message), None, datetime.now(UTC))


async def run(c: SnsConnector, message: dict[str, Any]) -> Any:
    try:
        r = request(message)
        await c.authenticate(r)
        return await c.respond(r), c.normalize(r) if message["Type"] == "Notification" else None
    finally:
        await c.aclose()


@pytest.mark.parametrize("version", ["1", "2"])
def test_signature_versions_verify_and_the_certificate_is_cached(version: str) -> None:
    fake = Fake()
    c = connector(fake)
    reply, drafts = asyncio.run(run(c, fake.message(version=version)))
    assert reply is None
    assert drafts[0].type == "sns.notification" and drafts[0].payload["Message"] == {"order": 7}
    asyncio.run(run(c, fake.message(version=version)))
    assert fake.requests == [CERT_URL]  # fetched once


def test_tampering_unknown_versions_and_foreign_certificate_urls_are_rejected() -> None:
    fake = Fake()
    tampered = fake.message()
    tampered["Message"] = '{"order": 8}'
    with pytest.raises(SignatureError):
        asyncio.run(run(connector(fake), tampered))
    with pytest.raises(SignatureError, match="SignatureVersion"):
        asyncio.run(run(connector(fake), fake.message(SignatureVersion="3")))
    for url in ("http://sns.us-east-2.amazonaws.com/c.pem",
                "https://sns.us-east-2.amazonaws.com.evil.example/c.pem",
                "https://evil.example/sns.us-east-2.amazonaws.com/c.pem",
                "https://sns.us-east-2.amazonaws.com/c.txt"):
        with pytest.raises(SignatureError, match="SigningCertURL"):
            asyncio.run(run(connector(fake), fake.message(SigningCertURL=url)))
    assert set(fake.requests) == {CERT_URL}  # nothing fetched from a foreign host
    with pytest.raises(SignatureError, match="topic"):
        asyncio.run(run(connector(fake, topic_arns=["arn:aws:sns:eu-west-1:1:Other"]),
                        fake.message()))


def test_unreachable_certificate_is_unavailable_not_unauthentic() -> None:
    fake = Fake()
    c = SnsConnector("sns", SnsConnector.Config.model_validate({}))
    c.transport = httpx.MockTransport(lambda r: httpx.Response(503))
    with pytest.raises(Unavailable):
        asyncio.run(run(c, fake.message()))


def test_subscription_is_confirmed_only_when_allowed() -> None:
    fake = Fake()
    reply, _ = asyncio.run(run(connector(fake), fake.message("SubscriptionConfirmation")))
    assert orjson.loads(reply.body)["confirmed"] is False
    assert not any("ConfirmSubscription" in u for u in fake.requests)
    reply, _ = asyncio.run(run(connector(fake, confirm_subscriptions=True),
                               fake.message("SubscriptionConfirmation")))
    assert orjson.loads(reply.body) == {"confirmed": True}
    assert any("Action=ConfirmSubscription" in u for u in fake.requests)
    evil = fake.message("SubscriptionConfirmation",
                        SubscribeURL="https://evil.example/?Action=ConfirmSubscription")
    with pytest.raises(SignatureError, match="SubscribeURL"):
        asyncio.run(run(connector(fake, confirm_subscriptions=True), evil))
