"""AWS SNS: the documented string to sign, RSA v1/v2, certificate URL rules, confirmation,
and how certificates are fetched: a bounded LRU cache, one fetch per URL however many
deliveries wait for it, and failed URLs left alone for a while.

AWS publishes no real signature (only an example string to sign, checked first), and no
Python verifier; messages here are signed with a generated RSA key whose self-signed
certificate is served by a real HTTP server on 127.0.0.1 (``CertServer``). AWS's host
names cannot be served locally, so the connector's client reaches that server through a
transport that sends every request there, keeping the URL's host header and path.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from connectors.aws_sns import CERT_CACHE_SIZE, SnsConnector, string_to_sign
from connectors.request import InboundRequest
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


def self_signed(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))


class Fake:
    """The sending side: an RSA key, its certificate, and signed messages."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pem = self_signed(self.key).public_bytes(serialization.Encoding.PEM)

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


class ToServer(httpx.AsyncBaseTransport):
    """Sends every request to the local server, as it is (host header, path, query)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inner: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.inner is None:
            self.inner = httpx.AsyncHTTPTransport()
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        if self.inner is not None:
            await self.inner.aclose()
            self.inner = None


class CertServer:
    """A real HTTP server standing in for SNS hosts: serves ``pem`` for any ``.pem`` path
    (``status`` and ``delay`` change how it answers), confirms subscriptions, and records
    every URL asked for, as ``https://host/path?query``."""

    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.status = 200
        self.delay = 0.0
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(f"https://{self.headers['Host']}{self.path}")
                time.sleep(server.delay)
                path = self.path.partition("?")[0]
                if server.status != 200:
                    self._answer(server.status, b"failing on purpose")
                elif path.endswith(".pem"):
                    self._answer(200, server.pem)
                elif "Action=ConfirmSubscription" in self.path:
                    self._answer(200, b"<ConfirmSubscriptionResponse/>")
                else:
                    self._answer(404, b"not found")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def transport(self) -> ToServer:
        return ToServer(self.port)

    def fetches(self, url: str = CERT_URL) -> int:
        return self.requests.count(url)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def fake() -> Fake:
    return Fake()  # one RSA key for the module: generating one takes a while


@pytest.fixture
def server(fake: Fake) -> Iterator[CertServer]:
    s = CertServer(fake.pem)
    try:
        yield s
    finally:
        s.close()


def connector(server: CertServer, **config: Any) -> SnsConnector:
    c = SnsConnector("sns", SnsConnector.Config.model_validate(config))
    c.certs.transport = server.transport()
    return c


def request(message: dict[str, Any]) -> InboundRequest:
    return InboundRequest("POST", "http://gw/webhooks/sns", {"content-type": "text/plain"}, {},
                          orjson.dumps(message), None, datetime.now(UTC))


async def run(c: SnsConnector, message: dict[str, Any]) -> Any:
    try:
        r = request(message)
        await c.verify(r)
        return await c.handshake(r), c.normalize(r) if message["Type"] == "Notification" else None
    finally:
        await c.aclose()


@pytest.mark.parametrize("version", ["1", "2"])
def test_signature_versions_verify_and_the_certificate_is_cached(
        version: str, fake: Fake, server: CertServer) -> None:
    c = connector(server)
    reply, drafts = asyncio.run(run(c, fake.message(version=version)))
    assert reply is None
    assert drafts[0].type == "sns.notification"
    assert drafts[0].payload["Message"] == {"order": 7}
    asyncio.run(run(c, fake.message(version=version)))
    assert server.requests == [CERT_URL]  # fetched once


def test_tampering_unknown_versions_and_foreign_certificate_urls_are_rejected(
        fake: Fake, server: CertServer) -> None:
    tampered = fake.message()
    tampered["Message"] = '{"order": 8}'
    with pytest.raises(SignatureError):
        asyncio.run(run(connector(server), tampered))
    with pytest.raises(SignatureError, match="SignatureVersion"):
        asyncio.run(run(connector(server), fake.message(SignatureVersion="3")))
    for url in ("http://sns.us-east-2.amazonaws.com/c.pem",
                "https://sns.us-east-2.amazonaws.com.evil.example/c.pem",
                "https://evil.example/sns.us-east-2.amazonaws.com/c.pem",
                "https://sns.us-east-2.amazonaws.com/c.txt"):
        with pytest.raises(SignatureError, match="SigningCertURL"):
            asyncio.run(run(connector(server), fake.message(SigningCertURL=url)))
    assert set(server.requests) == {CERT_URL}  # nothing fetched from a foreign host
    with pytest.raises(SignatureError, match="topic"):
        asyncio.run(run(connector(server, topic_arns=["arn:aws:sns:eu-west-1:1:Other"]),
                        fake.message()))


@pytest.mark.parametrize("url", [
    CERT_URL + "?x=1",
    CERT_URL + "?",
    CERT_URL + "#fragment",
    CERT_URL + "#",
    "https://user@sns.us-east-2.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://user:pw@sns.us-east-2.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://evil.example@sns.us-east-2.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.us-east-2.amazonaws.com:8443/SimpleNotificationService-abc.pem",
    "https://sns.us-east-2.amazonaws.com:443/SimpleNotificationService-abc.pem",
    "https://sns.us-east-2.amazonaws.com:99999/SimpleNotificationService-abc.pem",
    "https://sns.us-east-2.amazonaws.com:x/SimpleNotificationService-abc.pem",
    "https://[sns.us-east-2.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.us-east-2.amazonaws.com/Simple\x00Notification.pem",
    "https://sns.us-east-2.amazonaws.com/Simple Notification.pem",
    "https://sns.us-east-2.amazonaws.com/Simplé.pem",
    "https://sns.us-east-2.amazonaws.com/" + "a" * 5000 + ".pem",
    "HTTPS://sns.us-east-2.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.us-east-2.amazonaws.com\\@evil.example/c.pem",
])
def test_certificate_urls_with_query_fragment_userinfo_or_port_are_refused(
        url: str, fake: Fake, server: CertServer) -> None:
    """Only ``https://sns.<region>.amazonaws.com/<path>.pem`` is fetched: anything a URL
    can carry besides (a query, a fragment, credentials, a port, bytes a URL cannot hold)
    is refused before any request, as unauthentic (401), never as an error (500)."""
    with pytest.raises(SignatureError, match="SigningCertURL"):
        asyncio.run(run(connector(server), fake.message(SigningCertURL=url)))
    assert server.requests == []


def test_a_foreign_subscribe_url_is_refused_before_any_request(
        fake: Fake, server: CertServer) -> None:
    good = "https://sns.us-east-2.amazonaws.com/?Action=ConfirmSubscription&Token=1"
    for url in (good + "#frag", good.replace("https://", "https://u@"),
                good.replace(".com/", ".com:8443/"), "https://[sns/?Action=ConfirmSubscription",
                good + "\x00"):
        message = fake.message("SubscriptionConfirmation", SubscribeURL=url)
        with pytest.raises(SignatureError, match="SubscribeURL"):
            asyncio.run(run(connector(server, confirm_subscriptions=True), message))
    assert not any("ConfirmSubscription" in u for u in server.requests)


def test_unreachable_certificate_is_unavailable_not_unauthentic(
        fake: Fake, server: CertServer) -> None:
    server.status = 503
    with pytest.raises(Unavailable):
        asyncio.run(run(connector(server), fake.message()))


def test_the_certificate_cache_is_bounded_and_keeps_the_recently_used(
        fake: Fake, server: CertServer) -> None:
    urls = [f"https://sns.us-east-2.amazonaws.com/SimpleNotificationService-{i}.pem"
            for i in range(CERT_CACHE_SIZE + 1)]
    c = connector(server)

    async def deliver(*chosen: str) -> None:
        for url in chosen:
            await c.verify(request(fake.message(SigningCertURL=url)))

    async def scenario() -> None:
        try:
            await deliver(*urls[:CERT_CACHE_SIZE])  # the cache is full
            await deliver(urls[0])  # used again: now the most recent
            await deliver(urls[CERT_CACHE_SIZE])  # one more: evicts the least recent, urls[1]
            await deliver(urls[0], urls[CERT_CACHE_SIZE], urls[1])
        finally:
            await c.aclose()

    asyncio.run(scenario())
    assert CERT_CACHE_SIZE <= 32
    assert [server.fetches(u) for u in urls[:3]] == [1, 2, 1]  # urls[1] fetched again
    assert server.fetches(urls[CERT_CACHE_SIZE]) == 1
    assert len(server.requests) == CERT_CACHE_SIZE + 2


def test_concurrent_deliveries_share_one_fetch(fake: Fake, server: CertServer) -> None:
    server.delay = 0.3
    c = connector(server)

    async def scenario() -> list[Any]:
        try:
            return await asyncio.gather(*(c.verify(request(fake.message()))
                                          for _ in range(20)), return_exceptions=True)
        finally:
            await c.aclose()

    assert asyncio.run(scenario()) == [None] * 20
    assert server.requests == [CERT_URL]


def test_a_waiter_that_gives_up_does_not_cancel_the_fetch_for_the_others(
        fake: Fake, server: CertServer) -> None:
    server.delay = 0.3
    c = connector(server)

    async def scenario() -> None:
        try:
            first = asyncio.create_task(c.verify(request(fake.message())))
            second = asyncio.create_task(c.verify(request(fake.message())))
            await asyncio.sleep(0.05)
            first.cancel()  # the first sender hung up
            await second
            with pytest.raises(asyncio.CancelledError):
                await first
        finally:
            await c.aclose()

    asyncio.run(scenario())
    assert server.requests == [CERT_URL]


def test_a_failed_fetch_is_not_repeated_for_a_while(fake: Fake, server: CertServer) -> None:
    server.status = 500
    c = connector(server)
    c.certs.failed_ttl = 0.5

    async def attempt() -> BaseException | None:
        try:
            await c.verify(request(fake.message()))
        except (Unavailable, SignatureError) as exc:
            return exc
        return None

    async def scenario() -> list[BaseException | None]:
        try:
            first = await attempt()
            together = await asyncio.gather(*(attempt() for _ in range(5)))
            server.status = 200  # the host recovers, but the failure is remembered ...
            remembered = await attempt()
            await asyncio.sleep(0.6)  # ... until it expires
            return [first, *together, remembered, await attempt()]
        finally:
            await c.aclose()

    *failures, recovered = asyncio.run(scenario())
    assert all(isinstance(f, Unavailable) and f.retry_after >= 1 for f in failures)
    assert recovered is None
    assert server.fetches() == 2  # the failure, then the recovery


def test_a_certificate_that_is_not_rsa_is_refused_and_remembered(
        fake: Fake, server: CertServer) -> None:
    server.pem = self_signed(ec.generate_private_key(ec.SECP256R1())).public_bytes(
        serialization.Encoding.PEM)
    c = connector(server)

    async def scenario() -> None:
        try:
            for _ in range(3):
                with pytest.raises(SignatureError, match="RSA"):
                    await c.verify(request(fake.message()))
        finally:
            await c.aclose()

    asyncio.run(scenario())
    assert server.fetches() == 1


def test_subscription_is_confirmed_only_when_allowed(fake: Fake, server: CertServer) -> None:
    reply, _ = asyncio.run(run(connector(server), fake.message("SubscriptionConfirmation")))
    assert orjson.loads(reply.body)["confirmed"] is False
    assert not any("ConfirmSubscription" in u for u in server.requests)
    reply, _ = asyncio.run(run(connector(server, confirm_subscriptions=True),
                               fake.message("SubscriptionConfirmation")))
    assert orjson.loads(reply.body) == {"confirmed": True}
    assert any("Action=ConfirmSubscription" in u for u in server.requests)
    evil = fake.message("SubscriptionConfirmation",
                        SubscribeURL="https://evil.example/?Action=ConfirmSubscription")
    with pytest.raises(SignatureError, match="SubscribeURL"):
        asyncio.run(run(connector(server, confirm_subscriptions=True), evil))
