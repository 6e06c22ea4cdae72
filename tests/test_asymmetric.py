"""Discord (Ed25519) and SendGrid (ECDSA P-256): the gateway holds only public keys.

Vectors: SendGrid's own SDK unit-test vector; signatures made with freshly generated key
pairs checked by the providers' SDKs (discord-interactions, sendgrid) as well as by us.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from connectors.asymmetric import DiscordConnector, SendGridConnector
from connectors.errors import InvalidConnector
from connectors.request import InboundRequest
from gateway.errors import SignatureError
from tests.helpers import base_config, consume, settle, thread_server, write_config


def request(body: bytes, headers: dict[str, str]) -> InboundRequest:
    return InboundRequest("POST", "http://gw/webhooks/x", {k.lower(): v for k, v in
                                                           headers.items()}, {}, body, None,
                          datetime.now(UTC))


def make(cls: Any, public_key: str, **config: Any) -> Any:
    return cls("c", cls.Config.model_validate({"public_key": public_key, **config}))


# -- SendGrid -----------------------------------------------------------------------------

SG_PUBLIC = ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVK"
             "S3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==")
SG_SIGNATURE = ("MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqH"
                "h89M15TluLtEZtM=")
SG_TIMESTAMP = "1600112502"
SG_PAYLOAD = json.dumps([{
    "email": "hello@world.com", "event": "dropped", "reason": "Bounced Address",
    "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
    "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
    "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
    "timestamp": 1600112492}], sort_keys=True, separators=(",", ":")) + "\r\n"


def sg_headers(signature: str, timestamp: str) -> dict[str, str]:
    return {"X-Twilio-Email-Event-Webhook-Signature": signature,
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}


def test_sendgrid_sdk_unit_test_vector() -> None:
    # sendgrid/sendgrid-python test/unit/test_eventwebhook.py (signed in 2020: a window
    # that reaches back that far)
    c = make(SendGridConnector, SG_PUBLIC, tolerance_seconds=10**10)
    r = request(SG_PAYLOAD.encode(), sg_headers(SG_SIGNATURE, SG_TIMESTAMP))
    settle(c.verify(r))
    [event] = c.normalize(r)
    assert event.type == "dropped"
    with pytest.raises(SignatureError):  # the trailing CRLF is signed
        settle(
            c.verify(request(SG_PAYLOAD.rstrip().encode(), sg_headers(SG_SIGNATURE, SG_TIMESTAMP))))


def test_sendgrid_fresh_key_checked_by_the_sdk_too() -> None:
    from sendgrid.helpers.eventwebhook import EventWebhook

    private = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    stamp = str(int(time.time()))
    body = '[{"event":"delivered","sg_event_id":"a","timestamp":1},{"event":"open"}]\r\n'
    signature = base64.b64encode(private.sign((stamp + body).encode(),
                                              ec.ECDSA(hashes.SHA256()))).decode()
    assert EventWebhook(public).verify_signature(body, signature, stamp)
    c = make(SendGridConnector, public, tolerance_seconds=300)
    r = request(body.encode(), sg_headers(signature, stamp))
    settle(c.verify(r))
    assert [e.type for e in c.normalize(r)] == ["delivered", "open"]
    tampered = ((body.replace("open", "click"), stamp), (body, str(int(stamp) + 1)))
    for bad_body, bad_stamp in tampered:
        with pytest.raises(SignatureError):
            settle(c.verify(request(bad_body.encode(), sg_headers(signature, bad_stamp))))
    old = str(int(time.time()) - 1000)
    with pytest.raises(SignatureError) as stale:
        settle(c.verify(request(body.encode(), sg_headers(base64.b64encode(private.sign(
            (old + body).encode(), ec.ECDSA(hashes.SHA256()))).decode(), old))))
    assert stale.value.reason == "stale_timestamp"
    with pytest.raises(SignatureError) as missing:
        settle(c.verify(request(body.encode(), {"X-Twilio-Email-Event-Webhook-Timestamp": stamp})))
    assert missing.value.reason == "missing_signature"


def test_sendgrid_rejects_a_key_that_is_not_an_ecdsa_key() -> None:
    with pytest.raises(InvalidConnector, match="verification key"):
        make(SendGridConnector, base64.b64encode(b"not a key").decode())


# -- Discord ------------------------------------------------------------------------------

def discord_pair() -> tuple[ed25519.Ed25519PrivateKey, str]:
    private = ed25519.Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw).hex()
    return private, public


def discord_headers(private: ed25519.Ed25519PrivateKey, body: bytes, stamp: str
                    ) -> dict[str, str]:
    return {"X-Signature-Ed25519": private.sign(stamp.encode() + body).hex(),
            "X-Signature-Timestamp": stamp}


def test_discord_nacl_signatures_verify_here_and_in_discords_sdk() -> None:
    from discord_interactions import verify_key
    from nacl.signing import SigningKey

    signing = SigningKey.generate()
    public = signing.verify_key.encode().hex()
    stamp = str(int(time.time()))
    body = b'{"version":1,"application_id":"1","type":1,"event":{"type":"APPLICATION_AUTHORIZED",' \
           b'"timestamp":"2026-01-01T00:00:00.000000+00:00","data":{}}}'
    signature = signing.sign(stamp.encode() + body).signature.hex()
    assert verify_key(body, signature, stamp, public)
    c = make(DiscordConnector, public)
    r = request(body, {"X-Signature-Ed25519": signature, "X-Signature-Timestamp": stamp})
    settle(c.verify(r))
    [event] = c.normalize(r)
    assert event.type == "APPLICATION_AUTHORIZED"
    with pytest.raises(SignatureError):
        settle(c.verify(request(body + b" ", {"X-Signature-Ed25519": signature,
                                       "X-Signature-Timestamp": stamp})))


def test_discord_rejects_wrong_key_stale_and_missing() -> None:
    private, public = discord_pair()
    _, other = discord_pair()
    body = b'{"type":2,"id":"1"}'
    stamp = str(int(time.time()))
    with pytest.raises(SignatureError):
        settle(
            make(DiscordConnector, other).verify(
                request(body, discord_headers(private, body, stamp))))
    old = str(int(time.time()) - 1000)
    with pytest.raises(SignatureError) as stale:
        settle(
            make(DiscordConnector, public).verify(
                request(body, discord_headers(private, body, old))))
    assert stale.value.reason == "stale_timestamp"
    with pytest.raises(SignatureError) as missing:
        settle(
            make(DiscordConnector, public).verify(request(body, {"X-Signature-Timestamp": stamp})))
    assert missing.value.reason == "missing_signature"


def test_discord_pings_are_answered() -> None:
    _, public = discord_pair()
    c = make(DiscordConnector, public)
    pong = settle(c.handshake(request(b'{"type":1,"id":"1","application_id":"2"}', {})))
    assert pong is not None
    assert (pong.status, pong.body) == (200, b'{"type":1}')
    ack = settle(c.handshake(request(b'{"version":1,"application_id":"2","type":0}', {})))
    assert ack is not None
    assert ack.status == 204


def test_discord_public_key_must_be_hex() -> None:
    with pytest.raises(InvalidConnector, match="Ed25519"):
        make(DiscordConnector, "zz" * 32)


# -- Standard Webhooks v1a (Ed25519) ----------------------------------------------------

def test_standard_webhooks_v1a_ed25519_signatures() -> None:
    from connectors.presets import BY_NAME

    private, _ = discord_pair()
    raw_public = private.public_key().public_bytes(serialization.Encoding.Raw,
                                                   serialization.PublicFormat.Raw)
    cls = BY_NAME["standard_webhooks"]
    c = cls("sw", cls.Config.model_validate(
        {"public_key": "whpk_" + base64.b64encode(raw_public).decode()}))
    body, stamp = b'{"type": "invoice.paid"}', str(int(time.time()))
    sig = base64.b64encode(private.sign(f"msg_1.{stamp}.".encode() + body)).decode()
    headers = {"webhook-id": "msg_1", "webhook-timestamp": stamp,
               "webhook-signature": f"v1,AAAA v1a,{sig}"}  # unknown or wrong entries skipped
    settle(c.verify(request(body, headers)))
    with pytest.raises(SignatureError):
        settle(c.verify(request(body + b" ", headers)))
    old = str(int(time.time()) - 1000)
    stale = base64.b64encode(private.sign(f"msg_1.{old}.".encode() + body)).decode()
    with pytest.raises(SignatureError) as err:
        settle(c.verify(request(body, {**headers, "webhook-timestamp": old,
                                "webhook-signature": f"v1a,{stale}"})))
    assert err.value.reason == "stale_timestamp"
    with pytest.raises(ValueError, match="required"):
        cls.Config.model_validate({})


@pytest.mark.kafka
def test_discords_real_interactions_ping_is_answered_pong_end_to_end(
        kafka_bootstrap: str, data_dir: Path, tmp_path: Path, topic_prefix: str) -> None:
    """Discord's interactions PING carries "version": 1 (and a token); answered anything
    but 200 {"type": 1}, Discord refuses to save the endpoint URL."""
    from discord_interactions import InteractionResponseType, verify_key
    from nacl.signing import SigningKey

    signing = SigningKey.generate()
    public = signing.verify_key.encode().hex()
    body = (b'{"app_permissions":"562949953601536","application_id":"1101234567890123456",'
            b'"authorizing_integration_owners":{},"entitlements":[],'
            b'"id":"1201234567890123456","token":"aW50ZXJhY3Rpb246MTIw","type":1,'
            b'"user":{"id":"1","username":"discord"},"version":1}')
    stamp = str(int(time.time()))
    signature = signing.sign(stamp.encode() + body).signature.hex()
    assert verify_key(body, signature, stamp, public)  # Discord's own library agrees
    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.{{source}}")
    cfg["connectors"] = {"dc": {"type": "discord", "config": {"public_key": public}}}
    with thread_server(write_config(tmp_path / "g.yaml", cfg)) as server:
        r = httpx.post(f"{server.url}/webhooks/dc", content=body, headers={
            "X-Signature-Ed25519": signature, "X-Signature-Timestamp": stamp,
            "Content-Type": "application/json"})
        assert r.status_code == 200
        assert r.json() == {"type": InteractionResponseType.PONG}
        forged = httpx.post(f"{server.url}/webhooks/dc", content=body, headers={
            "X-Signature-Ed25519": "00" * 64, "X-Signature-Timestamp": stamp})
        assert forged.status_code == 401
    assert consume(kafka_bootstrap, f"{topic_prefix}.discord", timeout=3) == []
