"""Plaid, Netlify, Vonage and Google Pub/Sub push: the JWT connectors, their key fetching.

Where each vector comes from (docs/research/providers/<type>.md has the sources):

- plaid: no published token; ES256 tokens made per Plaid's documented algorithm with a
  generated key, served by a fake Plaid whose answers parse as plaid-python's models.
- netlify: no vector, no SDK: JWS built by hand (RFC 7515) and by PyJWT.
- vonage: vonage-jwt's published test token and secret; fresh tokens checked by
  ``vonage_jwt.verify_signature``.
- google_pubsub: Google's published example token (expired, so refused), and tokens
  signed with a generated RSA key that google-auth's ``id_token.verify_token`` accepts.

Keys come from a real local HTTP server (tests/catalog_support.py ``KeyServer``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm

from connectors.google_pubsub import GOOGLE_CERTS, PubSubConnector
from connectors.jwt_signed import NetlifyConnector, PlaidConnector, VonageConnector, decode_hs256
from connectors.keyfetch import check_url
from connectors.request import InboundRequest
from gateway.errors import SignatureError, Unavailable
from tests.catalog_support import (
    AUDIENCE,
    GOOGLE_EXAMPLE,
    PUSH_BODY,
    PUSHER,
    Google,
    KeyServer,
    accepted,
    auth,
    make,
    now,
    refused,
    req,
)
from tests.helpers import settle


def test_key_urls_must_be_https_on_the_named_hosts() -> None:
    check_url("https://sandbox.plaid.com/webhook_verification_key/get", ["sandbox.plaid.com"])
    for url in ("http://sandbox.plaid.com/x", "https://evil.example/x",
                "https://sandbox.plaid.com:8443/x", "https://u@sandbox.plaid.com/x",
                "https://sandbox.plaid.com/x?y=1", "https://sandbox.plaid.com/x#f",
                "https://sandbox.plaid.com.evil.example/x"):
        with pytest.raises(ValueError, match="not an https URL"):
            check_url(url, ["sandbox.plaid.com"])
    for env in ("sandbox", "development", "production"):
        c = make(PlaidConnector, client_id="i", secret="s" * 30, environment=env)
        assert c.url == f"https://{env}.plaid.com/webhook_verification_key/get"


# -- Plaid ----------------------------------------------------------------------------

PLAID_KID = "bfbd5111-8e33-4643-8ced-b2e642a72f3c"  # the kid of Plaid's documented example
PLAID_BODY = json.dumps({"environment": "sandbox", "item_id": "wz666MBjYWTp2PDzzggYhM6oWWmBb",
                         "webhook_code": "SYNC_UPDATES_AVAILABLE",
                         "webhook_type": "TRANSACTIONS"}, indent=2).encode()  # Plaid: 2 spaces
PLAID_SECRET = "plaid-api-secret-for-tests-only-0000"


@pytest.fixture(scope="module")
def plaid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def plaid_jwk(key: ec.EllipticCurvePrivateKey, expired: bool = False) -> dict[str, Any]:
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "alg": "ES256", "kid": PLAID_KID, "use": "sig", "created_at": 1560466143,
            "expired_at": 1700000000 if expired else None}


def plaid_token(key: Any, body: bytes = PLAID_BODY, iat: int | None = None,
                alg: str = "ES256") -> dict[str, str]:
    claims = {"iat": now() if iat is None else iat,
              "request_body_sha256": hashlib.sha256(body).hexdigest()}
    return {"Plaid-Verification": jwt.encode(claims, key, alg, headers={"kid": PLAID_KID})}


def plaid(keys: KeyServer, **extra: Any) -> PlaidConnector:
    c: PlaidConnector = make(PlaidConnector, client_id="5e8a0c2d", secret=PLAID_SECRET,
                             environment="sandbox", **extra)
    return keys.attach(c)


def test_plaids_sdk_reads_the_fake_plaid_key_endpoint(
        keys: KeyServer, plaid_key: ec.EllipticCurvePrivateKey) -> None:
    import plaid as plaid_sdk
    from plaid.api.plaid_api import PlaidApi
    from plaid.model.webhook_verification_key_get_request import (
        WebhookVerificationKeyGetRequest,
    )

    keys.plaid[PLAID_KID] = plaid_jwk(plaid_key)
    api = PlaidApi(plaid_sdk.ApiClient(plaid_sdk.Configuration(
        host=keys.base, api_key={"clientId": "5e8a0c2d", "secret": PLAID_SECRET})))
    answer = api.webhook_verification_key_get(WebhookVerificationKeyGetRequest(key_id=PLAID_KID))
    assert answer.key.kid == PLAID_KID
    assert answer.key.crv == "P-256"  # Plaid's schema
    assert plaid_sdk.Environment.Sandbox == "https://sandbox.plaid.com"


def test_plaid_token_verifies_once_the_key_is_fetched_and_forgeries_are_refused(
        keys: KeyServer, plaid_key: ec.EllipticCurvePrivateKey) -> None:
    keys.plaid[PLAID_KID] = plaid_jwk(plaid_key)
    c = plaid(keys)
    headers = plaid_token(plaid_key)
    accepted(c, req(PLAID_BODY, headers))
    accepted(c, req(PLAID_BODY, plaid_token(plaid_key)))
    settle(c.verify(req(PLAID_BODY, headers)))
    assert keys.count("webhook_verification_key") == 1  # cached
    method, url, sent = keys.requests[0]
    assert (method, url) == ("POST", "https://sandbox.plaid.com/webhook_verification_key/get")
    assert json.loads(sent) == {"client_id": "5e8a0c2d", "secret": PLAID_SECRET,
                                "key_id": PLAID_KID}
    [event] = c.normalize(req(PLAID_BODY))
    assert event.type == "TRANSACTIONS.SYNC_UPDATES_AVAILABLE"
    # the same body signed again later is a new delivery; the same token is not
    later = plaid_token(plaid_key, iat=now() - 5)
    assert c.delivery_id(req(PLAID_BODY, headers)) != c.delivery_id(req(PLAID_BODY, later))
    other = ec.generate_private_key(ec.SECP256R1())
    cases = [(PLAID_BODY.replace(b"  ", b" "), headers, "invalid_signature"),  # whitespace
             (PLAID_BODY, plaid_token(other), "invalid_signature"),  # wrong key, same kid
             (PLAID_BODY, {}, "missing_signature"),
             (PLAID_BODY, plaid_token(plaid_key, iat=now() - 301), "stale_timestamp"),
             (PLAID_BODY, plaid_token(b"k" * 32, alg="HS256"), "invalid_signature")]
    for body, h, reason in cases:
        assert refused(c, req(body, h)) == reason
    assert keys.count("webhook_verification_key") == 1  # none of these fetched anything


def test_plaid_unknown_and_expired_keys_and_plaid_outages(
        keys: KeyServer, plaid_key: ec.EllipticCurvePrivateKey) -> None:
    c = plaid(keys)
    assert refused(c, req(PLAID_BODY, plaid_token(plaid_key))) == "invalid_signature"
    assert refused(c, req(PLAID_BODY, plaid_token(plaid_key))) == "invalid_signature"
    assert keys.count("webhook_verification_key") == 1  # the unknown kid is remembered
    expired = plaid(keys)
    keys.plaid[PLAID_KID] = plaid_jwk(plaid_key, expired=True)
    assert refused(expired, req(PLAID_BODY, plaid_token(plaid_key))) == "invalid_signature"
    down = plaid(keys)
    down.keys.failed_ttl = 0.3
    keys.status = 503
    for _ in range(2):
        [error] = auth(down, req(PLAID_BODY, plaid_token(plaid_key)))
        assert isinstance(error, Unavailable)
        assert error.retry_after >= 1
    assert keys.count("webhook_verification_key") == 3  # the outage fetched once
    keys.status = 200
    keys.plaid[PLAID_KID] = plaid_jwk(plaid_key)
    time.sleep(0.35)
    accepted(down, req(PLAID_BODY, plaid_token(plaid_key)))


def test_plaid_concurrent_deliveries_share_one_fetch_within_a_budget(
        keys: KeyServer, plaid_key: ec.EllipticCurvePrivateKey) -> None:
    keys.plaid[PLAID_KID] = plaid_jwk(plaid_key)
    keys.delay = 0.3
    c = plaid(keys)
    assert auth(c, *(req(PLAID_BODY, plaid_token(plaid_key)) for _ in range(20))) == [None] * 20
    assert keys.count("webhook_verification_key") == 1
    c2 = plaid(keys)
    c2.keys.fetches_per_minute = 2
    forged = [dict(plaid_token(plaid_key)) for _ in range(3)]
    for i, h in enumerate(forged):  # three different kids a forger made up
        header = jwt.encode({"iat": now(), "request_body_sha256": hashlib.sha256(
            PLAID_BODY).hexdigest()}, plaid_key, "ES256", headers={"kid": f"forged-{i}"})
        h["Plaid-Verification"] = header
    assert refused(c2, req(PLAID_BODY, forged[0])) == "invalid_signature"
    assert refused(c2, req(PLAID_BODY, forged[1])) == "invalid_signature"
    [error] = auth(c2, req(PLAID_BODY, forged[2]))
    assert isinstance(error, Unavailable)
    assert "too many" in error.detail
    assert keys.count("webhook_verification_key") == 3  # 1 + the budget's 2


# -- Netlify --------------------------------------------------------------------------

NETLIFY_SECRET = "netlify-jws-secret-token-0123456789"
NETLIFY_BODY = (b'{"id":"5ebc34bf4fea0b01f02efa3a",'
                b'"site_id":"fa4dd95a-994e-4f89-8a7a-2d9e9fc36a32","build_id":"5ebc34bf4fea0b01f02efa38","state":"ready","name":"www-jvt-me",'
                b'"created_at":"2020-05-13T17:56:15.346Z","updated_at":"2020-05-13T17:58:56.738Z",'
                b'"branch":"master","context":"production"}')  # a deploy Netlify sent (research)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def hand_jws(claims: dict[str, Any], secret: str, alg: str = "HS256") -> str:
    """RFC 7515 compact serialization, HMAC-SHA256 by hand: no JWT library involved."""
    signing_input = (b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + "."
                     + b64url(json.dumps(claims).encode()))
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + (b64url(mac) if alg != "none" else "")


def test_netlify_jws_by_hand_and_by_pyjwt_are_accepted_and_forgeries_refused() -> None:
    c = make(NetlifyConnector, secrets=["old-netlify-secret-0123456789abcdef", NETLIFY_SECRET])
    claims = {"iss": "netlify", "sha256": hashlib.sha256(NETLIFY_BODY).hexdigest()}
    for token in (hand_jws(claims, NETLIFY_SECRET), jwt.encode(claims, NETLIFY_SECRET),
                  c.sign(NETLIFY_BODY)["X-Webhook-Signature"]):
        settle(c.verify(req(NETLIFY_BODY, {"X-Webhook-Signature": token})))
    [event] = c.normalize(req(NETLIFY_BODY))
    assert event.type == "deploy.ready"
    assert event.timestamp is not None
    assert c.replay_key(req(NETLIFY_BODY)) is None  # the body's hash is the id, and signed
    cases = [
        (NETLIFY_BODY.replace(b"ready", b"error"), hand_jws(claims, NETLIFY_SECRET),
         "invalid_signature"),
        (NETLIFY_BODY, hand_jws(claims, "another-secret-0123456789abcdef00"),
         "invalid_signature"),
        (NETLIFY_BODY, hand_jws({**claims, "iss": "evil"}, NETLIFY_SECRET), "invalid_signature"),
        (NETLIFY_BODY, hand_jws({"iss": "netlify"}, NETLIFY_SECRET), "missing_signature"),
        (NETLIFY_BODY, hand_jws(claims, NETLIFY_SECRET, alg="none"), "invalid_signature"),
        (NETLIFY_BODY, hand_jws({**claims, "exp": now() - 60}, NETLIFY_SECRET),
         "stale_timestamp"),
        (NETLIFY_BODY, "", "missing_signature"),
    ]
    for body, token, reason in cases:
        headers = {"X-Webhook-Signature": token} if token else {}
        with pytest.raises(SignatureError) as info:
            settle(c.verify(req(body, headers)))
        assert info.value.reason == reason, token


# -- Vonage ---------------------------------------------------------------------------

# vonage-python-sdk jwt/tests/test_verify_jwt.py: a token and its signature secret
VONAGE_SDK_TOKEN = ("eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJPbmxpbmUgSldUIEJ1aWxkZXIiLCJp"
                    "YXQiOjE2OTc2MzQ2ODAsImV4cCI6MzMyNTQ1NDA4MjgsImF1ZCI6IiIsInN1YiI6IiJ9.88vJc3I2"
                    "HhuqEDixHXVhc9R30tA6U_HQHZTC29y6CGM")
VONAGE_SDK_SECRET = "qwertyuiopasdfghjklzxcvbnm123456"
VONAGE_BODY = (b'{"message_uuid":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","to":"447700900000",'
               b'"from":"447700900001","timestamp":"2026-02-03T12:14:25Z","status":"delivered",'
               b'"channel":"sms"}')


def vonage_token(body: bytes, secret: str = VONAGE_SDK_SECRET, iat: int | None = None,
                 payload_hash: str | None = None) -> dict[str, str]:
    claims = {"iat": now() if iat is None else iat, "jti": "c5ba8f24-1a14-4c10-bfdf",
              "iss": "Vonage", "api_key": "abcd1234", "application_id": "aaaaaaaa-bbbb",
              "payload_hash": payload_hash or hashlib.sha256(body).hexdigest()}
    return {"Authorization": "Bearer " + jwt.encode(claims, secret, "HS256")}


def test_vonage_sdk_vector_and_sdk_checked_tokens() -> None:
    from vonage_jwt.verify_jwt import verify_signature

    assert verify_signature(VONAGE_SDK_TOKEN, VONAGE_SDK_SECRET)  # the SDK's own vector ...
    claims = decode_hs256(VONAGE_SDK_TOKEN, [VONAGE_SDK_SECRET.encode()])  # ... verifies here
    assert claims["iss"] == "Online JWT Builder"
    with pytest.raises(SignatureError, match="signature does not match"):
        decode_hs256(VONAGE_SDK_TOKEN, [b"asdf" * 8])
    c = make(VonageConnector, secret=VONAGE_SDK_SECRET)
    with pytest.raises(SignatureError) as info:  # it covers no body: not a webhook token
        settle(c.verify(req(VONAGE_BODY, {"Authorization": "Bearer " + VONAGE_SDK_TOKEN})))
    assert info.value.reason == "missing_signature"
    headers = vonage_token(VONAGE_BODY)
    assert verify_signature(headers["Authorization"][7:], VONAGE_SDK_SECRET)
    settle(c.verify(req(VONAGE_BODY, headers)))
    settle(c.verify(req(VONAGE_BODY, c.sign(VONAGE_BODY))))
    pretty = json.dumps(json.loads(VONAGE_BODY), indent=1).encode()  # hashed compactly
    settle(c.verify(req(pretty, vonage_token(pretty, payload_hash=hashlib.sha256(
        VONAGE_BODY).hexdigest()))))
    [event] = c.normalize(req(VONAGE_BODY))
    assert (event.type, c.delivery_id(req(VONAGE_BODY))) == (
        "message.delivered", "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee:delivered")
    cases = [(VONAGE_BODY.replace(b"delivered", b"rejected"), headers, "invalid_signature"),
             (VONAGE_BODY, vonage_token(VONAGE_BODY, "another-secret-0123456789abcdef0"),
              "invalid_signature"),
             (VONAGE_BODY, {}, "missing_signature"),
             (VONAGE_BODY, {"Authorization": headers["Authorization"][7:]},
              "missing_signature"),
             (VONAGE_BODY, vonage_token(VONAGE_BODY, iat=now() - 301), "stale_timestamp"),
             (VONAGE_BODY, vonage_token(VONAGE_BODY, iat=now() + 900), "stale_timestamp")]
    for body, h, reason in cases:
        with pytest.raises(SignatureError) as info:
            settle(c.verify(req(body, h)))
        assert info.value.reason == reason


# -- Google Cloud Pub/Sub push ----------------------------------------------------------

def pubsub(keys: KeyServer, **config: Any) -> PubSubConnector:
    c: PubSubConnector = make(PubSubConnector, **{"audience": AUDIENCE, **config})
    return keys.attach(c)


def push(token: str) -> InboundRequest:
    return req(PUSH_BODY, {"Authorization": f"Bearer {token}"})


def test_googles_published_token_is_read_and_refused_as_expired(keys: KeyServer) -> None:
    assert jwt.get_unverified_header(GOOGLE_EXAMPLE)["kid"] == (
        "7d680d8c70d44e947133cbd499ebc1a61c3d5abc")
    assert jwt.decode(GOOGLE_EXAMPLE, options={"verify_signature": False}) == {
        "aud": AUDIENCE, "azp": "113774264463038321964", "email": PUSHER,
        "email_verified": True, "exp": 1550185935, "iat": 1550182335,
        "iss": "https://accounts.google.com", "sub": "113774264463038321964"}
    assert refused(pubsub(keys), push(GOOGLE_EXAMPLE)) == "stale_timestamp"
    assert keys.requests == []  # refused before any fetch


def test_pubsub_tokens_google_auth_accepts_are_accepted(google: Google, keys: KeyServer) -> None:
    from google.auth.transport.requests import Request
    from google.oauth2 import id_token

    google.publish(keys)
    token = google.token()
    for certs in ("/oauth2/v1/certs", "/oauth2/v3/certs"):  # x509 (google-auth's own RSA
        claims = id_token.verify_token(token, Request(), audience=AUDIENCE,  # code), JWKS
                                       certs_url=keys.base + certs)
        assert claims["email"] == PUSHER
    keys.requests.clear()
    c = pubsub(keys, service_account_email=PUSHER, type_attribute="kind")
    accepted(c, push(token))
    accepted(c, push(google.token()))
    settle(c.verify(push(token)))
    assert [(m, u) for m, u, _ in keys.requests] == [("GET", GOOGLE_CERTS)]  # once, cached
    [event] = c.normalize(push(token))
    assert (event.type, event.payload["data"], event.payload["data_encoding"]) == (
        "order.paid", {"order": 7}, "json")
    assert event.timestamp == datetime(2021, 2, 26, 19, 13, 55, 749000, tzinfo=UTC)
    assert c.delivery_id(push(token)) == "2070443601311540"
    assert c.replay_key(push(token)) == "body:" + hashlib.sha256(PUSH_BODY).hexdigest()
    raw = PUSH_BODY.replace(base64.b64encode(b'{"order": 7}'), base64.b64encode(b"\xffbin"))
    [binary] = make(PubSubConnector, audience=AUDIENCE).normalize(req(raw))
    assert (binary.type, binary.payload["data_encoding"]) == ("pubsub.message", "base64")


def test_pubsub_forgeries_are_refused(google: Google, keys: KeyServer) -> None:
    google.publish(keys)
    c = pubsub(keys, service_account_email=PUSHER)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    no_fetch = [(google.token(aud="https://other.example"), "invalid_signature"),
                (google.token(iss="https://evil.example"), "invalid_signature"),
                (google.token(exp=now() - 60, iat=now() - 3660), "stale_timestamp"),
                (jwt.encode({"aud": AUDIENCE}, "s" * 32, "HS256"), "invalid_signature")]
    for token, reason in no_fetch:
        assert refused(c, push(token)) == reason
    assert refused(c, req(PUSH_BODY)) == "missing_signature"
    assert keys.requests == []
    fetched = [(google.token(key=other), "invalid_signature"),  # right kid, wrong key
               (google.token(email="someone@evil.iam.gserviceaccount.com"),
                "invalid_signature"),
               (google.token(email_verified=False), "invalid_signature"),
               (google.token(iat=now() + 600), "stale_timestamp"),
               (google.token(kid="unknown", key=other), "invalid_signature")]
    for token, reason in fetched:
        assert refused(c, push(token)) == reason
    assert len(keys.requests) == 1  # an unknown kid in fresh keys does not refetch


def test_pubsub_key_rotation_single_flight_and_outages(
        google: Google, keys: KeyServer, monkeypatch: pytest.MonkeyPatch) -> None:
    google.publish(keys)
    keys.delay = 0.3
    c = pubsub(keys)
    assert auth(c, *(push(google.token()) for _ in range(20))) == [None] * 20
    assert len(keys.requests) == 1
    keys.delay = 0.0
    rotated = Google()
    rotated.keys["k2"] = rotated.keys.pop("k1")
    rotated.publish(keys)  # Google rotates: k2 appears, k1 goes
    monkeypatch.setattr("connectors.google_pubsub.JWKS_REFRESH_AFTER", 0.0)
    accepted(c, push(rotated.token("k2")))
    assert len(keys.requests) == 2
    down = pubsub(keys)
    keys.status = 500
    for _ in range(3):
        [error] = auth(down, push(google.token()))
        assert isinstance(error, Unavailable)
    assert len(keys.requests) == 3  # the failure is remembered
