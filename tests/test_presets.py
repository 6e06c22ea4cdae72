"""Provider presets: a shared suite every preset must pass, then each provider's own vectors.

The shared suite signs with the preset's own scheme, so it proves the behaviour (tampered
body, wrong secret, stripped header, stale timestamp rejected; envelopes valid). Whether
a scheme is *right* is proven by the vectors below it, which come from the provider's
documentation or from the provider's official SDK run here as a test dependency.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import jsonschema
import orjson
import pytest

from connectors.presets import BY_NAME, PRESETS, Preset, PresetConnector
from connectors.presets.handshakes import META
from connectors.request import InboundRequest
from connectors.signing import HmacScheme
from gateway.audit import AuditLog
from gateway.buffer import Buffer
from gateway.config import GatewayConfig
from gateway.envelope import SCHEMA_PATH
from gateway.errors import SignatureError
from gateway.pipeline import Pipeline
from tests.helpers import settle

FIXTURES = Path(__file__).parent / "fixtures"
URL = "https://hooks.example.com/webhooks/test"


def connector(name: str, *secrets: str, **config: Any) -> PresetConnector:
    cls = BY_NAME[name]
    if cls.preset.needs_url:
        config.setdefault("public_url", URL)
    if cls.preset.challenge is META:
        config.setdefault("verify_token", "meta-verify-token")
    return cls(f"{name}-test", cls.Config.model_validate({"secrets": list(secrets), **config}))


def request(body: bytes, headers: dict[str, str], url: str = URL) -> InboundRequest:
    return InboundRequest("POST", url, {k.lower(): v for k, v in headers.items()}, {}, body,
                          "127.0.0.1", datetime.now(UTC))


def secret_for(preset: Preset) -> str:
    if preset.scheme.key_format == "whsec":
        return "whsec_" + base64.b64encode(os.urandom(24)).decode()
    if preset.scheme.key_format == "base64":
        return base64.b64encode(os.urandom(32)).decode()
    if preset.scheme.key_format == "hex":
        return os.urandom(32).hex().upper()
    return "preset-suite-secret-" + preset.name


def suite_body(now: float, preset: Preset | None = None) -> bytes:
    etype = preset.known_types[0] if preset and preset.known_types else "suite.event"
    event = {"type": etype, "id": "evt_1", "event_id": "evt_1",
             "webhookTimestamp": int(now * 1000), "created_at": "2026-01-01T00:00:00Z",
             "data": {"object": {"amount": 1}}}
    if preset and preset.batch_pointer:  # the events' array inside an object
        outer: dict[str, Any] = {preset.batch_pointer.strip("/"): [event]}
        s = preset.scheme
        if isinstance(s, HmacScheme) and s.timestamp_pointer and \
                s.timestamp_pointer.count("/") == 1:  # the delivery's signed time (Pusher)
            outer[s.timestamp_pointer[1:]] = (int(now * 1000) if s.timestamp_format == "unix_ms"
                                              else int(now))
        return orjson.dumps(outer)
    return orjson.dumps([event] if preset and preset.batch else event)


def signed(c: PresetConnector, body: bytes, *, at: float | None = None) -> dict[str, str]:
    p = c.preset
    headers = p.scheme.sign(c.secrets[0], body, timestamp=at, delivery_id="msg_suite_1",
                            url=c.config.public_url or "")
    if p.type_header:
        headers[p.type_header] = "suite.event"
    return headers


# -- the shared suite: every preset ------------------------------------------------------

@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_a_signed_delivery_verifies_and_normalizes_to_a_valid_envelope(preset: Preset) -> None:
    c = connector(preset.name, secret_for(preset))
    body = suite_body(time.time(), preset)
    r = request(body, signed(c, body))
    settle(c.verify(r))
    drafts = c.normalize(r)
    assert drafts
    pipeline = Pipeline(GatewayConfig(), {c.connector_id: c}, Buffer.__new__(Buffer),
                        cast(AuditLog, None))  # neither is used to build a record
    schema = json.loads(SCHEMA_PATH.read_text())
    for i, draft in enumerate(drafts):
        record = pipeline.record(c, draft, c.delivery_id(r), i, r.received_at, ())
        envelope = orjson.loads(record.value)
        jsonschema.validate(envelope, schema)
        assert envelope["source"] == preset.name
        assert c.secrets[0].decode() not in record.value.decode()


BODY_SIGNED = [p for p in PRESETS if p.signs_body]


@pytest.mark.parametrize("preset", BODY_SIGNED, ids=lambda p: p.name)
def test_tampered_body_is_rejected(preset: Preset) -> None:
    c = connector(preset.name, secret_for(preset))
    body = suite_body(time.time(), preset)
    headers = signed(c, body)
    with pytest.raises(SignatureError) as err:
        settle(c.verify(request(body.replace(b'"amount":1', b'"amount":9'), headers)))
    assert err.value.reason == "invalid_signature"


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_wrong_secret_is_rejected_and_any_listed_secret_verifies(preset: Preset) -> None:
    right, wrong = secret_for(preset), secret_for(preset)
    if right == wrong:
        wrong = right + "-other"
    body = suite_body(time.time(), preset)
    headers = signed(connector(preset.name, right), body)
    with pytest.raises(SignatureError):
        settle(connector(preset.name, wrong).verify(request(body, headers)))
    settle(connector(preset.name, wrong, right).verify(request(body, headers)))  # rotation


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_stripped_signature_header_is_rejected(preset: Preset) -> None:
    c = connector(preset.name, secret_for(preset))
    body = suite_body(time.time(), preset)
    headers = {k: v for k, v in signed(c, body).items()
               if k.lower() != preset.scheme.header.lower()}
    with pytest.raises(SignatureError) as err:
        settle(c.verify(request(body, headers)))
    assert err.value.reason == "missing_signature"


TIMESTAMPED = [p for p in PRESETS if p.scheme.timestamped]


@pytest.mark.parametrize("preset", TIMESTAMPED, ids=lambda p: p.name)
def test_stale_timestamp_is_rejected(preset: Preset) -> None:
    c = connector(preset.name, secret_for(preset))
    old = time.time() - preset.scheme.tolerance_seconds - 120
    body = suite_body(old, preset)
    with pytest.raises(SignatureError) as err:
        settle(c.verify(request(body, signed(c, body, at=old))))
    assert err.value.reason == "stale_timestamp"


def test_at_least_thirty_presets_are_registered() -> None:
    from connectors import registry

    assert len(PRESETS) >= 30
    assert {p.name for p in PRESETS} <= set(registry.available())


# -- vectors published by the providers ---------------------------------------------------

def test_slack_published_vector() -> None:
    # api.slack.com "Verifying requests from Slack", as in slack_sdk's own tests.
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
            b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
            b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
            b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
            b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    headers = {"X-Slack-Request-Timestamp": "1531420618",
               "X-Slack-Signature":
               "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"}
    c = connector("slack", "8f742231b10e8888abcd99yyyzzz85a5")
    c.preset.scheme.verify(request(body, headers), c.keys, now=1531420618 + 10)
    with pytest.raises(SignatureError, match="replay"):
        settle(c.verify(request(body, headers)))  # today, 2018's timestamp is stale


@pytest.mark.parametrize(("body", "key", "expected"), [
    # circleci.com/docs/webhooks "Validate webhooks", the guide's table and Python example
    ("hello world", "secret", "734cc62f32841568f45715aeb9f4d7891324e6d948e4c6c60c0621cdac48623a"),
    ("lalala", "another-secret",
     "daa220016c8f29a8b214fbfc3671aeec2145cfb1e6790184ffb38b6d0425fa00"),
    ("an-important-request-payload", "hunter123",
     "9be2242094a9a8c00c64306f382a7f9d691de910b4a266f67bd314ef18ac49fa"),
    ("foo", "secret", "773ba44693c7553d6ee20f61ea5d2757a9a4f4a44d2841ae4e95b52e4cd62db4"),
])
def test_circleci_published_vectors(body: str, key: str, expected: str) -> None:
    header = f"v2=ignored,v1={expected}"  # a list; unknown versions are skipped
    settle(
        connector("circleci", key).verify(request(body.encode(), {"circleci-signature": header})))


def test_svix_published_vector() -> None:
    # docs.svix.com "Verifying payloads manually", example signatures
    body = b'{"event_type":"ping","data":{"success":true}}'
    headers = {"svix-id": "msg_loFOjxBNrRLzqYUf", "svix-timestamp": "1731705121",
               "svix-signature": "v2,AAAA v1,rAvfW3dJ/X/qxhsaXPOyyCGmRKsaKWcsNccKXlIktD0="}
    c = connector("svix", "whsec_plJ3nmyCDGBKInavdOK15jsl")
    c.preset.scheme.verify(request(body, headers), c.keys, now=1731705121)


def test_bitbucket_atlassian_published_vector() -> None:
    # developer.atlassian.com webhooks "Secure" section (Atlassian's Hello World example)
    headers = {"X-Hub-Signature":
               "sha256=a4771c39fbe90f317c7824e83ddef3caae9cb3d976c214ace1f2937e133263c9"}
    settle(connector("bitbucket", "It's a Secret to Everybody").verify(
        request(b"Hello World!", headers)))


# -- vectors from the providers' own SDK test suites --------------------------------------

def test_standard_webhooks_library_vector() -> None:
    # standard-webhooks/standard-webhooks python/tests: test_sign_function
    headers = {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
               "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
    c = connector("standard_webhooks", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    c.preset.scheme.verify(request(b'{"test": 2432232314}', headers), c.keys, now=1614265330)


def test_paddle_sdk_vector() -> None:
    # PaddleHQ/paddle-python-sdk tests/Unit/Notification/test_Verifier.py
    secret = "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh"
    header = ("ts=1696195954;h1=dummy;"
              "h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02")
    c = connector("paddle", secret)
    c.preset.scheme.verify(request(b"hello-world", {"Paddle-Signature": header}), c.keys,
                           now=1696195954)


def test_pagerduty_go_sdk_vector() -> None:
    # PagerDuty/go-pagerduty webhookv3/webhookv3_test.go
    body = (FIXTURES / "pagerduty_v3_body.json").read_bytes()
    header = "v1=0c0b9495b893a39e70d1fea2fe11fbe0a825f88b9f67846f6cc07dd2bc5476cd"
    settle(connector("pagerduty", "lDQHScfUeXUKaQRNF+8XIiDKZ7XX3itBAYzwU0TARw8lJqRnkKl2iB1anSb0Z+IK"
              ).verify(request(body, {"X-PagerDuty-Signature": f"v1=00,{header}"})))


@pytest.mark.parametrize(("body", "key", "url", "signature"), [
    # square/square-python-sdk tests: webhooks helper
    ('{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":'
     '"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z",'
     '"data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}',
     "Ibxx_5AKakO-3qeNVR61Dw", "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9",
     "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4="),
    ('{"data":{"type":"webhooks","id":">id<"}}', "signature-key",
     "https://webhook.site/webhooks", "Cxt7+aTi4rKgcA0bC4g9EHdVtLSDWdqccmL5MvihU4U="),
])
def test_square_sdk_vectors(body: str, key: str, url: str, signature: str) -> None:
    c = connector("square", key, public_url=url)
    settle(c.verify(request(body.encode(), {"x-square-hmacsha256-signature": signature},
                     url="http://internal-host/webhooks/square")))  # the public URL is signed
    wrong = connector("square", key, public_url=url + "x")
    with pytest.raises(SignatureError):
        settle(wrong.verify(request(body.encode(), {"x-square-hmacsha256-signature": signature})))


@pytest.mark.parametrize(("secret", "body", "header"), [
    # sanity-io/webhook-toolkit tests
    ("try-me", '{"title":"GROQ-Hooks are neat"}',
     "t=1633518820676,v1=e7C9h2sfbFfc4V7TEz7PSOp4IoNzl0UdVsBV-1wgdeA"),
    ("test", '{"_id":"resume"}', "t=1633519811129,v1=tLa470fx7qkLLEcMOcEUFuBbRSkGujyskxrNXcoh0N0"),
])
def test_sanity_toolkit_vectors(secret: str, body: str, header: str) -> None:
    c = connector("sanity", secret)
    stamp = int(header.split(",")[0][2:]) / 1000
    c.preset.scheme.verify(request(body.encode(), {"sanity-webhook-signature": header}),
                           c.keys, now=stamp)


# -- vectors produced by the providers' SDKs, here and now ---------------------------------

def test_stripe_sdk_signs_what_we_verify_and_verifies_what_we_sign() -> None:
    stripe = pytest.importorskip("stripe")
    secret = "whsec_test_" + os.urandom(8).hex()
    payload = '{"id": "evt_1", "type": "invoice.paid", "created": 1700000000}'
    header = stripe.WebhookSignature.generate_signature_header(payload, secret)
    c = connector("stripe", secret)
    r = request(payload.encode(), {"Stripe-Signature": header})
    settle(c.verify(r))
    assert c.normalize(r)[0].type == "invoice.paid"
    assert c.delivery_id(r) == "evt_1"
    ours = c.preset.scheme.sign(secret.encode(), payload.encode())["Stripe-Signature"]
    stripe.WebhookSignature.verify_header(payload, ours, secret, tolerance=300)
    old = stripe.WebhookSignature.generate_signature_header(payload, secret,
                                                           timestamp=int(time.time()) - 400)
    with pytest.raises(SignatureError, match="replay"):
        settle(c.verify(request(payload.encode(), {"Stripe-Signature": old})))


def test_slack_sdk_signs_what_we_verify() -> None:
    from slack_sdk.signature import SignatureVerifier

    secret, body, ts = "slack-" + os.urandom(8).hex(), '{"type":"event_callback"}', str(
        int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    settle(connector("slack", secret).verify(request(body.encode(), {
        "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature})))


@pytest.mark.parametrize(("name", "module", "prefix"), [
    ("standard_webhooks", "standardwebhooks.webhooks", "webhook"),
    ("svix", "svix.webhooks", "svix"),
    ("clerk", "svix.webhooks", "svix"),
    ("resend", "svix.webhooks", "svix"),
])
def test_svix_family_sdks_sign_what_we_verify(name: str, module: str, prefix: str) -> None:
    webhook_cls = pytest.importorskip(module).Webhook
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    payload = '{"type": "user.created", "data": {"id": "u1"}}'
    now = datetime.now(UTC)
    signature = webhook_cls(secret).sign("msg_sdk_1", now, payload)
    headers = {f"{prefix}-id": "msg_sdk_1", f"{prefix}-timestamp": str(int(now.timestamp())),
               f"{prefix}-signature": signature}
    c = connector(name, secret)
    settle(c.verify(request(payload.encode(), headers)))
    ours = c.preset.scheme.sign(secret.encode(), payload.encode(), delivery_id="msg_sdk_2")
    webhook_cls(secret).verify(payload, ours)


def test_paddle_sdk_verifies_what_we_sign() -> None:
    notifications = pytest.importorskip("paddle_billing.Notifications")
    secret = "pdl_ntfset_" + os.urandom(8).hex()
    body = b'{"event_id":"evt_01","event_type":"transaction.completed"}'
    header = connector("paddle", secret).preset.scheme.sign(secret.encode(), body)

    class Request:
        def __init__(self) -> None:
            self.headers = header
            self.data = self.content = self.body_bytes = self.body = body
    assert notifications.Verifier().verify(Request(), notifications.Secret(secret))


# -- handshakes ---------------------------------------------------------------------------

def test_slack_url_verification_is_answered_after_its_signature_checks() -> None:
    c = connector("slack", "s3")
    body = b'{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",' \
           b'"type":"url_verification"}'
    r = request(body, c.preset.scheme.sign(b"s3", body))
    settle(c.verify(r))
    reply = settle(c.handshake(r))
    assert reply is not None
    assert reply.body == b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    assert reply.content_type == "text/plain"


def test_zoom_url_validation_answers_the_encrypted_token() -> None:
    import hashlib
    import hmac

    c = connector("zoom", "zoom-secret")
    body = b'{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event":"endpoint.url_validation"}'
    reply = settle(c.handshake(request(body, c.preset.scheme.sign(b"zoom-secret", body))))
    assert reply is not None
    answer = orjson.loads(reply.body)
    assert answer == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": hmac.new(
        b"zoom-secret", b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()}


def test_zoom_url_validation_during_rotation_answers_with_the_secret_zoom_signed_with() -> None:
    import hashlib
    import hmac

    c = connector("zoom", "old-zoom-secret", "new-zoom-secret")
    body = b'{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event":"endpoint.url_validation"}'
    reply = settle(c.handshake(request(body, c.preset.scheme.sign(b"new-zoom-secret", body))))
    assert reply is not None
    assert orjson.loads(reply.body)["encryptedToken"] == hmac.new(
        b"new-zoom-secret", b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()


def test_twitch_callback_verification_echoes_the_challenge() -> None:
    c = connector("twitch", "twitch-secret")
    body = b'{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{"type":"x"}}'
    headers = c.preset.scheme.sign(b"twitch-secret", body, delivery_id="m1")
    headers["Twitch-Eventsub-Message-Type"] = "webhook_callback_verification"
    r = request(body, headers)
    settle(c.verify(r))
    reply = settle(c.handshake(r))
    assert reply is not None
    assert reply.body == b"pogchamp-kappa-360noscope-vohiyo"


def test_token_schemes_compare_the_whole_token() -> None:
    c = connector("gitlab", "glpat-secret-token")
    settle(c.verify(request(b"{}", {"X-Gitlab-Token": "glpat-secret-token"})))
    for wrong in ("glpat-secret-toke", "glpat-secret-token2", "GLPAT-SECRET-TOKEN"):
        with pytest.raises(SignatureError):
            settle(c.verify(request(b"{}", {"X-Gitlab-Token": wrong})))
    basic = connector("postmark", "user:pass")
    settle(basic.verify(request(b"{}", {"Authorization": "Basic " + base64.b64encode(
        b"user:pass").decode()})))


@pytest.mark.parametrize(("name", "good"), [
    ("openclaw", "token.usage"), ("moltbook", "model.trained"), ("fourclaw", "review.started")])
def test_product_connectors_check_their_event_types(name: str, good: str) -> None:
    from gateway.errors import Unnormalizable

    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    c = connector(name, secret)
    body = orjson.dumps({"type": good, "data": {}})
    r = request(body, signed(c, body))
    settle(c.verify(r))
    assert c.normalize(r)[0].type == good
    stray = orjson.dumps({"type": "something.else", "data": {}})
    with pytest.raises(Unnormalizable, match="unknown"):
        c.normalize(request(stray, signed(c, stray)))


def test_product_connectors_verify_standard_webhooks_sdk_signatures() -> None:
    from standardwebhooks.webhooks import Webhook

    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    payload = '{"type": "llm.function_call", "data": {"name": "search"}}'
    now = datetime.now(UTC)
    sig = Webhook(secret).sign("msg_claw_1", now, payload)
    settle(connector("openclaw", secret).verify(request(payload.encode(), {
        "webhook-id": "msg_claw_1", "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": sig})))


def test_meta_subscription_check_echoes_the_challenge_only_for_the_right_token() -> None:
    c = connector("meta_whatsapp", "app-secret", verify_token="vt-123")
    ok = InboundRequest("GET", URL, {}, {"hub.mode": "subscribe", "hub.verify_token": "vt-123",
                                         "hub.challenge": "1158201444"}, b"", None,
                        datetime.now(UTC))
    reply = c.challenge(ok)
    assert reply is not None
    assert (reply.status, reply.body) == (200, b"1158201444")
    bad = InboundRequest("GET", URL, {}, {"hub.mode": "subscribe", "hub.verify_token": "nope",
                                          "hub.challenge": "1"}, b"", None, datetime.now(UTC))
    reply = c.challenge(bad)
    assert reply is not None
    assert reply.status == 403


def test_dropbox_and_okta_challenges() -> None:
    d = connector("dropbox", "app-secret")
    get = InboundRequest("GET", URL, {}, {"challenge": "abc123"}, b"", None, datetime.now(UTC))
    reply = d.challenge(get)
    assert reply is not None
    assert reply.body == b"abc123"
    assert reply.content_type == "text/plain"
    o = connector("okta", "Bearer okta-shared")
    verification = InboundRequest("GET", URL, {"authorization": "Bearer okta-shared",
                                               "x-okta-verification-challenge": "Lg3Y"}, {},
                                  b"", None, datetime.now(UTC))
    reply = o.challenge(verification)
    assert reply is not None
    assert orjson.loads(reply.body) == {"verification": "Lg3Y"}
    forged = InboundRequest("GET", URL, {"authorization": "Bearer other",
                                         "x-okta-verification-challenge": "Lg3Y"}, {}, b"",
                            None, datetime.now(UTC))
    with pytest.raises(SignatureError):
        o.challenge(forged)


def test_hubspot_sdk_v3_signature_verifies() -> None:
    from hubspot.utils.signature import Signature

    secret, uri = "hubspot-client-secret", URL
    body = '[{"eventId": 1, "subscriptionType": "contact.creation", "occurredAt": 1700000000000}]'
    stamp = str(int(time.time() * 1000))
    signature = Signature.get_signature(secret, body, "v3", uri, "POST", stamp)
    c = connector("hubspot", secret)
    r = request(body.encode(), {"X-HubSpot-Signature-v3": signature,
                                "X-HubSpot-Request-Timestamp": stamp})
    settle(c.verify(r))
    [event] = c.normalize(r)  # a batch: one event per element
    assert event.type == "contact.creation"
    assert event.timestamp == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)  # from ms


def test_docusign_reads_every_numbered_signature_one_per_key() -> None:
    """With two HMAC keys DocuSign sends X-DocuSign-Signature-1 and -2; the key we hold
    may be the one behind -2 (rotation)."""
    c = connector("docusign", "second-key")
    body = b'{"event":"envelope-completed","data":{"envelopeId":"e1"}}'
    first = c.preset.scheme.sign(b"first-key", body)["X-DocuSign-Signature-1"]
    second = c.preset.scheme.sign(b"second-key", body)["X-DocuSign-Signature-1"]
    settle(c.verify(request(body, {"X-DocuSign-Signature-1": first,
                                   "X-DocuSign-Signature-2": second})))
    with pytest.raises(SignatureError):
        settle(c.verify(request(body, {"X-DocuSign-Signature-1": first})))


def test_every_proof_header_is_redacted_in_dead_letters() -> None:
    """A dead letter keeps the request's headers for a redrive, never a signature or a
    token: every scheme's proof header is one ``redacted`` replaces."""
    from connectors.registry import definitions
    from gateway.records import REDACTED, redacted

    names = set()
    for p in PRESETS:
        names.add(p.scheme.header)
        if isinstance(p.scheme, HmacScheme) and p.scheme.fallback_header:
            names.add(p.scheme.fallback_header)
    for d in definitions().values():  # the classes' proof headers, from their tables
        if d.verification is not None:
            names.update(re.findall(r"`([A-Za-z][A-Za-z0-9-]+)`", d.verification.proof))
    # what proves nothing: timestamps, ids, versions; ?code= and a form's json field
    nothing = r"timestamp|-id$|version|signed-headers|url$|^code$|^json$"
    proofs = {n for n in names if not re.search(nothing, n, re.I)}
    assert len(proofs) > 60
    assert {n for n in proofs if redacted({n.lower(): "v"})[n.lower()] != REDACTED} == set()
