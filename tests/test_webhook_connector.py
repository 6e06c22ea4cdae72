"""The generic ``webhook`` connector, checked against independent HMAC computations."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.request import InboundRequest
from connectors.webhook import WebhookConnector
from gateway.errors import SignatureError
from tests.helpers import settle

BODY = b'{"type": "order.paid", "created_at": "2026-03-01T10:00:00Z", "id": 7}'


def make(**config: Any) -> WebhookConnector:
    return WebhookConnector("hook", WebhookConnector.Config.model_validate(
        {"secret": "s3cret", **config}))


def req(body: bytes = BODY, /, **headers: str) -> InboundRequest:
    return InboundRequest("POST", "http://gw/webhooks/hook",
                          {k.lower(): v for k, v in headers.items()}, {}, body, None,
                          datetime.now(UTC))


@pytest.mark.parametrize(("algorithm", "encoding"), [
    ("sha1", "hex"), ("sha256", "hex"), ("sha512", "hex"),
    ("sha1", "base64"), ("sha256", "base64"), ("sha512", "base64")])
def test_digests_and_encodings(algorithm: str, encoding: str) -> None:
    mac = hmac.new(b"s3cret", BODY, getattr(hashlib, algorithm)).digest()
    text = mac.hex() if encoding == "hex" else base64.b64encode(mac).decode()
    c = make(algorithm=algorithm, encoding=encoding, prefix=f"{algorithm}=")
    settle(c.verify(req(**{"X-Signature": f"{algorithm}={text}"})))
    with pytest.raises(SignatureError):
        settle(c.verify(req(BODY + b" ", **{"X-Signature": f"{algorithm}={text}"})))


def test_timestamped_scheme_signs_timestamp_dot_body_and_enforces_the_window() -> None:
    c = make(timestamp_header="X-Timestamp", tolerance_seconds=60)
    now = int(time.time())

    def sig(ts: int) -> str:
        return hmac.new(b"s3cret", f"{ts}.".encode() + BODY, hashlib.sha256).hexdigest()

    settle(c.verify(req(**{"X-Signature": sig(now), "X-Timestamp": str(now)})))
    with pytest.raises(SignatureError) as stale:
        settle(c.verify(req(**{"X-Signature": sig(now - 120), "X-Timestamp": str(now - 120)})))
    assert stale.value.reason == "stale_timestamp"
    with pytest.raises(SignatureError) as future:
        settle(c.verify(req(**{"X-Signature": sig(now + 120), "X-Timestamp": str(now + 120)})))
    assert future.value.reason == "stale_timestamp"
    with pytest.raises(SignatureError):  # the timestamp is signed: changing it breaks it
        settle(c.verify(req(**{"X-Signature": sig(now), "X-Timestamp": str(now + 1)})))
    with pytest.raises(SignatureError) as missing:
        settle(c.verify(req(**{"X-Signature": sig(now)})))
    assert missing.value.reason == "missing_signature"


def test_event_type_from_pointer_header_or_default() -> None:
    assert make(event_type_pointer="/type").normalize(req())[0].type == "order.paid"
    assert make(event_type_header="X-Event").normalize(
        req(**{"X-Event": "thing.done"}))[0].type == "thing.done"
    assert make().normalize(req())[0].type == "webhook.received"


def test_event_time_and_delivery_id() -> None:
    c = make(timestamp_pointer="/created_at", id_header="X-Delivery")
    [draft] = c.normalize(req())
    assert draft.timestamp == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert c.delivery_id(req(**{"X-Delivery": "abc"})) == "abc"
    assert c.delivery_id(req()) == c.delivery_id(req())  # body hash when no header
    assert c.delivery_id(req(b"{}")) != c.delivery_id(req())


def test_sign_produces_what_verify_accepts() -> None:
    c = make(timestamp_header="X-Timestamp", id_header="X-Delivery", prefix="v1=")
    headers = c.sign(BODY)
    settle(c.verify(req(**headers)))
