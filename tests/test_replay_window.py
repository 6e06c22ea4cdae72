"""One replay window for every scheme (connectors/timestamps.py): the connector's
``tolerance_seconds`` when set, else the provider's finite default; too far in the
future is refused too. SendGrid, SNS and Dropbox Sign had no window by default."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from connectors.asymmetric import SendGridConnector
from connectors.aws_sns import SnsConnector
from connectors.errors import SignatureError
from connectors.request import InboundRequest
from connectors.timestamps import CLOCK_SKEW, PAST_ONLY, ReplayWindow
from tests.catalog_support import build
from tests.helpers import settle
from tests.test_aws_sns import CertServer, Fake, connector, request, run
from tests.test_catalog_hmac import hexmac, req


def test_the_window_reaches_back_and_ahead_and_reads_the_configured_tolerance() -> None:
    now = 1_800_000_000.0
    window = ReplayWindow.of(None, 300)
    window.check(now - 300, now=now)
    window.check(now + 300, now=now)
    for stamp in (now - 301, now + 301):
        with pytest.raises(SignatureError) as stale:
            window.check(stamp, now=now)
        assert stale.value.reason == "stale_timestamp"
    with pytest.raises(SignatureError) as missing:
        window.check(None, now=now)
    assert missing.value.reason == "missing_signature"
    assert ReplayWindow.of(10, 300) == ReplayWindow(10, 10)  # the connector's wins
    assert ReplayWindow.of(0, 300) == ReplayWindow(0, 0)  # zero is a window, not "off"
    ReplayWindow.of(None, 30, future=PAST_ONLY).check(now + 10**9, now=now)
    assert ReplayWindow.of(None, 3600, future=60).future == 60


def _sendgrid(private: ec.EllipticCurvePrivateKey, stamp: int, **config: Any
              ) -> tuple[SendGridConnector, InboundRequest]:
    public = base64.b64encode(private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    c = SendGridConnector("sg", SendGridConnector.Config.model_validate(
        {"public_key": public, **config}))
    body = b'[{"event": "delivered", "sg_event_id": "e1", "timestamp": 1}]'
    signature = private.sign(str(stamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    headers = {"x-twilio-email-event-webhook-signature": base64.b64encode(signature).decode(),
               "x-twilio-email-event-webhook-timestamp": str(stamp)}
    return c, InboundRequest("POST", "http://gw/webhooks/sg", headers, {}, body, None,
                             datetime.now(UTC))


def test_sendgrid_has_a_window_by_default_a_day_of_retries_wide() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    c, r = _sendgrid(private, now - 23 * 3600)
    settle(c.verify(r))  # a retry signed 23 hours ago
    for stamp in (now - 24 * 3600 - CLOCK_SKEW - 60, now + CLOCK_SKEW + 60):
        c, r = _sendgrid(private, stamp)
        with pytest.raises(SignatureError) as stale:
            settle(c.verify(r))
        assert stale.value.reason == "stale_timestamp"
    c, r = _sendgrid(private, now - 2 * 24 * 3600, tolerance_seconds=3 * 24 * 3600)
    settle(c.verify(r))  # the configured window wins


def test_sns_has_a_window_by_default_its_hour_of_retries_wide(
        sns: tuple[Fake, CertServer]) -> None:
    fake, server = sns

    def at(seconds_ago: int) -> dict[str, Any]:
        sent = datetime.fromtimestamp(time.time() - seconds_ago, UTC)
        return fake.message(Timestamp=sent.isoformat(timespec="milliseconds")
                            .replace("+00:00", "Z"))

    asyncio.run(run(connector(server), at(3500)))
    with pytest.raises(SignatureError) as stale:
        asyncio.run(run(connector(server), at(3600 + CLOCK_SKEW + 60)))
    assert stale.value.reason == "stale_timestamp"
    with pytest.raises(SignatureError) as ahead:
        asyncio.run(run(connector(server), at(-CLOCK_SKEW - 60)))
    assert ahead.value.reason == "stale_timestamp"
    asyncio.run(run(connector(server, tolerance_seconds=10**6), at(7200)))
    assert isinstance(connector(server), SnsConnector)
    assert request(at(0)).body.startswith(b"{")


def test_dropbox_sign_has_a_window_by_default_its_three_days_of_retries_wide() -> None:
    key = "dropbox-sign-api-key"

    def callback(seconds_ago: int) -> InboundRequest:
        stamp = str(int(time.time()) - seconds_ago)
        event = {"event": {"event_type": "signature_request_sent", "event_time": stamp,
                           "event_hash": hexmac(key, (stamp + "signature_request_sent")
                                                .encode())}}
        return req(orjson.dumps(event), {})

    settle(build("dropbox_sign", key).verify(callback(2 * 24 * 3600)))
    with pytest.raises(SignatureError) as stale:
        settle(build("dropbox_sign", key).verify(callback(4 * 24 * 3600)))
    assert stale.value.reason == "stale_timestamp"
