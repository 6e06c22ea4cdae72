"""Vectors from the providers themselves, one file of data (fixtures/provider_vectors.json):
each was published by the provider (documentation, an SDK's test suite) or produced or
accepted by the provider's own code (its SDK, its sender, its official sample verifier),
run outside Python where the provider ships nothing else ("source" says which and how;
the scripts are in docs/research/providers/). Each must verify, and fail once its body
changes by a byte; the few marked ``refused`` record a provider artefact we refuse on
purpose ("why").

The Python SDKs that can run here are run too (the tests after the table): they check
what our senders sign, so a scheme we got wrong cannot pass with a vector copied wrong.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

from connectors.base import Webhook
from connectors.errors import SignatureError
from connectors.presets import PresetConnector
from connectors.registry import available
from connectors.request import InboundRequest
from tests.helpers import settle

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "fixtures" / "provider_vectors.json").read_text())
URL = "https://hooks.example.com/webhooks/test"


def _id(v: dict[str, Any]) -> str:
    return f"{v['provider']}-{v['kind']}"


def connector(v: dict[str, Any]) -> Webhook[Any]:
    cls = available()[v["provider"]]
    config = {"secrets": [v["secret"]], **v.get("config", {})}
    if v.get("url"):
        config.setdefault("public_url", v["url"].split("?")[0])
    return cls(f"{v['provider']}-vector", cls.Config.model_validate(config))  # type: ignore[return-value]


def request(v: dict[str, Any], body: bytes) -> InboundRequest:
    url = v.get("url", URL)
    return InboundRequest(v.get("method", "POST"), url,
                          {k.lower(): str(h) for k, h in v["headers"].items()},
                          dict(parse_qsl(urlsplit(url).query)), body, "127.0.0.1",
                          datetime.now(UTC))


def body_of(v: dict[str, Any]) -> bytes:
    return base64.b64decode(v["body_b64"]) if "body_b64" in v else v["body"].encode()


def verify(v: dict[str, Any], body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    if v.get("scheme_only"):  # a secret our config refuses (WooCommerce's empty one)
        from connectors.presets import BY_NAME
        BY_NAME[v["provider"]].preset.scheme.verify(request(v, body), [v["secret"].encode()])
        return
    c = connector(v)
    if isinstance(c, PresetConnector) and type(c).verify is PresetConnector.verify:
        c.preset.scheme.verify(request(v, body), c.keys, url=c.config.public_url,
                               tolerance_seconds=c.config.tolerance_seconds, now=v.get("now"))
    else:
        if "now" in v:  # a class reads the clock itself: the vector's moment
            monkeypatch.setattr(time, "time", lambda: float(v["now"]))
        settle(c.verify(request(v, body)))


def tampered(body: bytes) -> bytes:
    return body[:-1] + bytes([body[-1] ^ 1]) if body else b" "


@pytest.mark.parametrize("v", [v for v in VECTORS if v["expect"] == "verifies"], ids=_id)
def test_a_providers_vector_verifies_and_not_once_tampered(
        v: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    verify(v, body_of(v), monkeypatch)
    if v["provider"] in ("okta", "postmark"):
        return  # a token: it authenticates the sender, the body is not covered
    with pytest.raises(SignatureError):
        verify(v, tampered(body_of(v)), monkeypatch)


@pytest.mark.parametrize("v", [v for v in VECTORS if v["expect"] == "refused"], ids=_id)
def test_a_provider_artefact_we_refuse_on_purpose_is_refused(
        v: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    assert v["why"]
    with pytest.raises(SignatureError):
        verify(v, body_of(v), monkeypatch)


def test_zooms_own_sdk_answers_its_url_validation_as_we_do() -> None:
    [v] = [v for v in VECTORS if v["provider"] == "zoom" and "reply" in v]
    c = connector(v)
    r = request(v, body_of(v))
    c.preset.scheme.verify(r, c.keys, now=v["now"])  # type: ignore[attr-defined]
    reply = settle(c.handshake(r))
    assert reply is not None
    assert orjson.loads(reply.body) == v["reply"]


def test_every_vector_names_its_source_and_a_registered_type() -> None:
    types = available()
    for v in VECTORS:
        assert v["provider"] in types
        assert v["kind"] in ("sdk-test-vector", "sdk-produced", "sdk-accepted",
                             "published-example")
        assert len(v["source"]) > 20


# -- the providers' Python SDKs, run here ---------------------------------------------------

def signed_by_us(name: str, secret: str, body: bytes, **config: Any) -> dict[str, str]:
    """What our sender (``gateway sign``) puts on ``body`` for the type ``name``."""
    cls = available()[name]
    c = cls(f"{name}-sdk", cls.Config.model_validate({"secrets": [secret], **config}))
    assert isinstance(c, PresetConnector)
    return c.preset.scheme.sign(secret.encode(), body)


def test_razorpay_sdk_accepts_what_we_sign() -> None:
    razorpay = pytest.importorskip("razorpay")
    body = b'{"entity":"event","event":"payment.authorized","contains":["payment"]}'
    header = signed_by_us("razorpay", "rzp-secret", body)["X-Razorpay-Signature"]
    assert razorpay.Utility().verify_webhook_signature(body.decode(), header, "rzp-secret")
    with pytest.raises(razorpay.errors.SignatureVerificationError):
        razorpay.Utility().verify_webhook_signature(body.decode() + " ", header, "rzp-secret")


def test_pusher_sdk_signs_what_we_verify_and_accepts_what_we_sign() -> None:
    pusher = pytest.importorskip("pusher")
    from pusher.signature import sign

    body = orjson.dumps({"time_ms": int(time.time() * 1000), "events": [
        {"name": "channel_occupied", "channel": "presence-room"}]})
    ours = signed_by_us("pusher", "pusher-secret", body)["X-Pusher-Signature"]
    client = pusher.Pusher(app_id="1", key="app-key", secret="pusher-secret")
    assert client.validate_webhook("app-key", ours, body.decode()) is not None
    theirs = sign("pusher-secret", body.decode())
    verify({"provider": "pusher", "secret": "pusher-secret",
            "headers": {"X-Pusher-Key": "app-key", "X-Pusher-Signature": theirs}},
           body, pytest.MonkeyPatch())


def test_easypost_sdk_accepts_what_we_sign_with_a_non_ascii_secret() -> None:
    easypost_util = pytest.importorskip("easypost.util")
    body = b'{"object":"Event","id":"evt_1","description":"tracker.updated"}'
    secret = "s\u00e9cret"  # typed precomposed (NFC); EasyPost keys with its NFKD form
    headers = signed_by_us("easypost", secret, body)
    assert easypost_util.validate_webhook(body, headers, secret)["id"] == "evt_1"


def test_modern_treasury_sdk_signs_what_we_verify() -> None:
    mt = pytest.importorskip("modern_treasury")
    client = mt.ModernTreasury(api_key="k", organization_id="o", webhook_key="mt-key")
    body = '{"event":"completed","data":{"object":"payment_order","id":"po_1"}}'
    theirs = client.webhooks.get_signature(body, key="mt-key")
    verify({"provider": "modern_treasury", "secret": "mt-key",
            "headers": {"X-Signature": theirs, "X-Webhook-ID": "wh_1"}},
           body.encode(), pytest.MonkeyPatch())
    ours = signed_by_us("modern_treasury", "mt-key", body.encode())
    assert client.webhooks.validate_signature(body, ours, key="mt-key")


def test_mollie_sdk_signs_what_we_verify_and_accepts_what_we_sign() -> None:
    webhooks = pytest.importorskip("mollie.utils.webhooks")
    body = '{"resource":"event","id":"event_1","type":"payment-link.paid"}'
    theirs = webhooks.SignatureValidator.create_signature(body, "mollie-secret")
    verify({"provider": "mollie", "secret": "mollie-secret",
            "headers": {"X-Mollie-Signature": f"sha256={theirs}"}},
           body.encode(), pytest.MonkeyPatch())
    ours = signed_by_us("mollie", "mollie-secret", body.encode())["X-Mollie-Signature"]
    assert webhooks.SignatureValidator.validate(body, "mollie-secret", ours)


def test_gitlab_signing_token_deliveries_verify_and_neither_mode_accepts_the_other() -> None:
    from standardwebhooks.webhooks import Webhook as StandardWebhook

    token = "whsec_" + base64.b64encode(b"gitlab-signing-token-32-bytes!!!").decode()
    body = b'{"object_kind":"push","ref":"refs/heads/main"}'
    headers = StandardWebhook(token).sign("msg_1", datetime.now(UTC), body.decode())
    signed = {"webhook-id": "msg_1", "webhook-timestamp": str(int(time.time())),
              "webhook-signature": headers, "X-Gitlab-Event": "Push Hook"}
    signing = connector({"provider": "gitlab", "secret": token, "config": {"mode": "signature"}})
    r = request({"headers": signed}, body)
    settle(signing.verify(r))
    assert signing.delivery_id(r) == "msg_1"
    assert signing.replay_key(r) is None  # the id is signed
    [event] = signing.normalize(r)
    assert event.type == "Push Hook"
    with pytest.raises(SignatureError):  # a token is not a signature
        settle(signing.verify(request({"headers": {"X-Gitlab-Token": token}}, body)))
    plain = connector({"provider": "gitlab", "secret": token})
    with pytest.raises(SignatureError):  # nor the other way round
        settle(plain.verify(r))
