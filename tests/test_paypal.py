"""PayPal: deliveries recorded in PayPal's own SDKs' tests, with the certificates they
name (fixtures/paypal_vectors.json; docs/research/providers/paypal.md says where each
comes from), verified at the moment they were sent. The certificate is served by a local
transport under its PayPal URL: the URL rules stay as they are.

Also: what is refused before any fetch (certificate URLs off PayPal's hosts), a
certificate that is not PayPal's message verification certificate, the replay window,
and why the signed transmission id is claimed as well (the CRC-32 the signature covers is
matched by a forged body in four bytes).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from connectors.paypal import PayPalConfig, PayPalConnector, signed_string
from connectors.request import InboundRequest
from gateway.errors import SignatureError

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "fixtures" / "paypal_vectors.json").read_text())
FULL = [v for v in VECTORS if not v["signature_only"]]  # PayPal's certificate of 2015
OLD = [v for v in VECTORS if v["signature_only"]]  # a self-signed sandbox key of 2014


def served(v: dict[str, Any], webhook_id: str | None = None) -> tuple[PayPalConnector,
                                                                      list[str]]:
    """The connector for ``v``'s webhook, its certificate fetches answered locally (the
    URLs fetched are listed)."""
    fetched: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        if str(request.url) == v["headers"]["PAYPAL-CERT-URL"]:
            return httpx.Response(200, content=v["certificate_pem"].encode())
        return httpx.Response(404)

    c = PayPalConnector("paypal-test", PayPalConfig(webhook_id=webhook_id or v["webhook_id"]))
    c.certs.transport = httpx.MockTransport(answer)
    return c, fetched


def req(v: dict[str, Any], body: bytes | None = None, /, **headers: str) -> InboundRequest:
    return InboundRequest("POST", "https://hooks.example.com/webhooks/paypal",
                          {k.lower(): val for k, val in {**v["headers"], **headers}.items()},
                          {}, v["body"].encode() if body is None else body, "127.0.0.1",
                          datetime.now(UTC))


@pytest.fixture
def at_the_time(monkeypatch: pytest.MonkeyPatch) -> Any:
    def pin(v: dict[str, Any]) -> None:
        monkeypatch.setattr(time, "time", lambda: float(v["now"]))
    return pin


def refused(runner: asyncio.Runner, c: PayPalConnector, r: InboundRequest,
            reason: str = "invalid_signature") -> None:
    with pytest.raises(SignatureError) as err:
        runner.run(c.verify(r))
    assert err.value.reason == reason


@pytest.mark.parametrize("v", FULL, ids=lambda v: v["webhook_id"])
def test_a_recorded_delivery_verifies_and_not_once_changed(
        v: dict[str, Any], at_the_time: Any, runner: asyncio.Runner) -> None:
    at_the_time(v)
    c, fetched = served(v)
    runner.run(c.verify(req(v)))
    runner.run(c.verify(req(v)))
    assert fetched == [v["headers"]["PAYPAL-CERT-URL"]]  # once: cached
    refused(runner, c, req(v, v["body"].replace("20.00", "21.00").encode()))
    refused(runner, served(v, webhook_id="WEBHOOK_ID")[0], req(v))  # another webhook
    sent = datetime.fromisoformat(v["headers"]["PAYPAL-TRANSMISSION-TIME"])
    later = sent.replace(second=(sent.second + 1) % 60).isoformat().replace("+00:00", "Z")
    refused(runner, c, req(v, **{"PAYPAL-TRANSMISSION-TIME": later}))  # a second later
    refused(runner, c, req(v, **{"PAYPAL-AUTH-ALGO": "MD5withRSA"}))
    event = c.normalize(req(v))[0]
    assert event.type == "PAYMENT.SALE.COMPLETED"
    assert c.delivery_id(req(v)).startswith("WH-")


@pytest.mark.parametrize("v", OLD, ids=lambda v: v["webhook_id"])
def test_older_sha1_deliveries_sign_as_described_but_their_key_is_not_paypals(
        v: dict[str, Any], at_the_time: Any, runner: asyncio.Runner) -> None:
    """2014 sandbox deliveries, signed SHA1withRSA by a self-signed key: the signed string
    is the one described, and the certificate is refused for not being PayPal's."""
    key = x509.load_pem_x509_certificate(v["certificate_pem"].encode()).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    h = v["headers"]
    key.verify(base64.b64decode(h["PAYPAL-TRANSMISSION-SIG"]),
               signed_string(h["PAYPAL-TRANSMISSION-ID"], h["PAYPAL-TRANSMISSION-TIME"],
                             v["webhook_id"], v["body"].encode()),
               padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - what they were signed with
    at_the_time(v)
    refused(runner, served(v)[0], req(v))


@pytest.mark.parametrize("url", [
    "http://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77",
    "https://api.sandbox.paypal.com.evil.example/v1/notifications/certs/CERT-1",
    "https://evil.example/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77",
    "https://api.sandbox.paypal.com:8443/v1/notifications/certs/CERT-1",
    "https://user@api.paypal.com/v1/notifications/certs/CERT-1",
    "https://api.paypal.com/v1/notifications/certs/CERT-1?x=1",
    "https://api.paypal.com/v1/notifications/certs/CERT-1#x",
    "https://api.paypal.com/v1/notifications/certs/../oauth2/token",
    "https://api.paypal.com/v1/other/CERT-1",
    "https://api.paypal.com/v1/notifications/certs/CERT-" + "a" * 65,
])
def test_a_certificate_url_off_paypals_certificate_paths_is_refused_unfetched(
        url: str, at_the_time: Any, runner: asyncio.Runner) -> None:
    v = FULL[0]
    at_the_time(v)
    c, fetched = served(v)
    refused(runner, c, req(v, **{"PAYPAL-CERT-URL": url}))
    assert fetched == []


def test_a_delivery_outside_the_window_or_missing_a_header_is_refused(
        at_the_time: Any, monkeypatch: pytest.MonkeyPatch, runner: asyncio.Runner) -> None:
    v = FULL[0]
    c, fetched = served(v)
    monkeypatch.setattr(time, "time", lambda: v["now"] + 3 * 86400 + 600.0)
    refused(runner, c, req(v), "stale_timestamp")
    assert fetched == []  # the window is checked before the certificate is fetched
    at_the_time(v)
    for name in ("PAYPAL-TRANSMISSION-SIG", "PAYPAL-CERT-URL", "PAYPAL-TRANSMISSION-ID"):
        refused(runner, c, req(v, **{name: ""}), "missing_signature")


def same_crc(data: bytes, wanted: int) -> bytes:
    """``data`` plus four bytes whose CRC-32 is ``wanted`` (CRC-32 is linear: anyone can)."""
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0xEDB88320 if c & 1 else 0)
        table.append(c)
    by_top = {t >> 24: i for i, t in enumerate(table)}
    indexes, c = [], wanted ^ 0xFFFFFFFF
    for _ in range(4):  # the table entries the last four steps must use, from the end
        i = by_top[c >> 24]
        indexes.append(i)
        c = ((c ^ table[i]) << 8) & 0xFFFFFFFF
    state, tail = zlib.crc32(data) ^ 0xFFFFFFFF, bytearray()
    for i in reversed(indexes):
        b = (state ^ i) & 0xFF
        tail.append(b)
        state = (state >> 8) ^ table[(state ^ b) & 0xFF]
    return data + bytes(tail)


def test_a_forged_body_with_the_same_crc_verifies_so_the_transmission_is_claimed(
        at_the_time: Any, runner: asyncio.Runner) -> None:
    v = FULL[0]
    at_the_time(v)
    c, _ = served(v)
    original = v["body"].encode()
    forged = same_crc(original.replace(b"20.00", b"99.00"), zlib.crc32(original))
    assert zlib.crc32(forged) == zlib.crc32(original)
    runner.run(c.verify(req(v, forged)))  # PayPal's signature cannot tell them apart
    # ... but both claim the same signed transmission id: the second is a duplicate
    assert c.replay_key(req(v, forged)) == c.replay_key(req(v)) == (
        f"transmission:{v['headers']['PAYPAL-TRANSMISSION-ID']}")
