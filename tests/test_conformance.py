"""One conformance suite for every webhook connector type, class-based ones included.

For each registered type (its config from ``tests/connector_cases.py``): a valid delivery
is accepted and its events validate against the envelope schema; a tampered body, a
wrong secret or key, the proof header stripped, and a stale timestamp are refused with
401; a secret rotated in (``secrets: [new, old]``) still verifies. Where a check cannot
apply to a scheme (a token authenticates the sender, not the body; a scheme signs no
timestamp), the reason is stated in the tables below, so that a new type must either
pass each check or say why not: ``test_every_webhook_type_is_classified`` fails
otherwise. Valid deliveries here are signed by the connector's own ``sign`` or the
provider's algorithm; each type's provider vectors and SDK checks are in its own tests.
"""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime
from typing import Any

import jsonschema
import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from connectors.base import Webhook
from connectors.presets import PresetConnector
from connectors.registry import available
from connectors.request import InboundRequest, event_id
from connectors.signing import HmacScheme, TokenScheme
from gateway.envelope import SCHEMA_PATH
from gateway.errors import SignatureError
from gateway.kafka_settings import KafkaConfig
from gateway.records import Records
from tests.connector_cases import CASES, ECDSA_KEY, ED25519_KEY, PUBLIC_URL, build
from tests.signing_support import keep_local, sign_detached, with_proof
from tests.test_aws_sns import CertServer, Fake

WEBHOOK_TYPES = sorted(name for name, cls in available().items() if cls.kind == "webhook")
SCHEMA = orjson.loads(SCHEMA_PATH.read_bytes())
RECORDS = Records(KafkaConfig())

# Verified with keys only the provider serves: their own tests run a key server.
KEY_SERVER_ONLY = {"google_pubsub": "tests/test_catalog_jwt.py",
                   "plaid": "tests/test_catalog_jwt.py", "paypal": "tests/test_paypal.py"}
# Proofs that do not cover the body's bytes.
BODY_NOT_COVERED = {
    "microsoft_graph": "clientState is a shared value inside each item, not a signature",
    "mailgun": "the signature covers timestamp + token, not the event",
    "figma": "a passcode inside the body, not a signature",
    "dropbox_sign": "event_hash covers event_time + event_type only",
    "azure_event_grid": "a shared key in the query or a header",
    "adyen": "each item's signed fields, not the body's bytes (tampered below by field)",
    "aws_sns": "the documented name/value pairs, not the bytes (tampered below by field)",
    "braintree": "bt_signature covers the bt_payload field; other form fields are ignored",
}
# Schemes without a timestamp the signature covers (so nothing can be stale).
NOT_TIMESTAMPED_CLASSES = {"github", "adyen", "microsoft_graph", "twilio", "figma",
                           "braintree", "plivo", "mandrill",
                           "azure_event_grid", "teams_outgoing", "contentful_untimed"}
# Where the proof travels when it is not in a header.
PROOF_IN_BODY = {"mailgun", "microsoft_graph", "adyen", "aws_sns", "figma", "dropbox_sign",
                 "braintree"}
PUBLIC_KEY_TYPES = {"discord", "sendgrid", "telnyx"}


def flip(secret: str) -> str:
    """The same secret with its last letter or digit changed, in its own alphabet."""
    for i in range(len(secret) - 1, -1, -1):
        ch = secret[i]
        if ch.isdigit():
            return secret[:i] + ("1" if ch == "0" else "0") + secret[i + 1:]
        if ch.isalpha() and ch.isascii():
            other = "B" if ch in "aA" else "A"
            return secret[:i] + (other.lower() if ch.islower() else other) + secret[i + 1:]
    return secret + "x"


def wrong_config(type_name: str) -> dict[str, Any] | None:
    config = dict(CASES[type_name])
    if "secret" in config:
        config["secret"] = flip(str(config["secret"]))
        return config
    if config.get("secrets"):
        config["secrets"] = [flip(str(s)) for s in config["secrets"]]
        return config
    return None


def is_token(c: Webhook[Any]) -> bool:
    return isinstance(c, PresetConnector) and isinstance(c.preset.scheme, TokenScheme)


def scheme_of(c: Webhook[Any]) -> HmacScheme | None:
    if isinstance(c, PresetConnector) and isinstance(c.preset.scheme, HmacScheme):
        return c.preset.scheme
    scheme = getattr(c, "scheme", None)
    return scheme if isinstance(scheme, HmacScheme) else None


def request(body: bytes, headers: dict[str, str]) -> InboundRequest:
    query = {}
    if "?" in PUBLIC_URL:
        query = dict(p.split("=", 1) for p in PUBLIC_URL.split("?", 1)[1].split("&"))
    return InboundRequest("POST", PUBLIC_URL, {k.lower(): v for k, v in headers.items()},
                          query, body, "127.0.0.1", datetime.now(UTC))


def valid(type_name: str, c: Webhook[Any], fake: Fake, stamp: str | None = None
          ) -> tuple[bytes, dict[str, str]]:
    """A delivery ``c`` accepts: the sample body, proven as the provider proves it."""
    body = c.sample_body()
    pointer = scheme.timestamp_pointer if (scheme := scheme_of(c)) is not None else None
    if pointer:  # the signed timestamp travels in the body (Linear)
        now_ms = int(time.time() * 1000)
        body = orjson.dumps({**orjson.loads(body), pointer.lstrip("/"): now_ms})
    if type_name in ("aws_sns", "figma", "dropbox_sign"):  # samples without their proof
        inside = with_proof(type_name, orjson.loads(body), fake, stamp=stamp)
        assert inside is not None
        body = inside
    headers = {"Content-Type": "application/json", **sign_detached(type_name, c, body)}
    return body, headers


async def outcome(c: Webhook[Any], r: InboundRequest) -> list[dict[str, Any]]:
    """The envelopes ``c`` makes of ``r``; raises SignatureError when it is refused."""
    await c.verify(r)
    reply = await c.handshake(r)
    if reply is not None:
        return []
    delivery = c.delivery_id(r)
    envelopes = []
    for i, draft in enumerate(c.normalize(r)):
        record = RECORDS.build(c, event_id(c.connector_id, delivery, i), source=c.source_slug,
                               type=draft.type, timestamp=draft.timestamp or r.received_at,
                               received_at=r.received_at, payload=draft.payload,
                               raw=draft.raw, key=draft.key)
        envelopes.append(orjson.loads(record.value))
    return envelopes


def test_every_webhook_type_is_classified() -> None:
    """A new type either conforms here or is named with the reason it cannot."""
    assert set(KEY_SERVER_ONLY) <= set(WEBHOOK_TYPES)
    assert set(BODY_NOT_COVERED) <= set(WEBHOOK_TYPES)
    assert set(CASES) >= set(WEBHOOK_TYPES)


CONFORMING = [t for t in WEBHOOK_TYPES if t not in KEY_SERVER_ONLY]


@pytest.mark.parametrize("type_name", CONFORMING)
def test_valid_accepted_and_forgeries_refused(type_name: str, sns: tuple[Fake, CertServer],
                                              runner: asyncio.Runner) -> None:
    fake, server = sns
    c = build(type_name)
    keep_local(c, server)
    body, headers = valid(type_name, c, fake)
    # valid: accepted, and every event is a valid envelope
    for envelope in runner.run(outcome(c, request(body, headers))):
        jsonschema.validate(envelope, SCHEMA)

    def refused(b: bytes, h: dict[str, str], connector: Webhook[Any] = c) -> str:
        with pytest.raises(SignatureError) as err:
            runner.run(outcome(connector, request(b, h)))
        return err.value.reason

    # tampered body
    if type_name == "adyen":
        refused(body.replace(b'"value":', b'"value":1') if b'"value":' in body
                else body.replace(b'"success":"true"', b'"success":"false"'), headers)
    elif type_name == "aws_sns":
        message = orjson.loads(body)
        refused(orjson.dumps({**message, "Message": str(message.get("Message")) + "!"}),
                headers)
    elif type_name not in BODY_NOT_COVERED and not is_token(c):
        refused(tamper(body), headers)
    # stripped proof: the signature header (or, for classes, every header the proof added)
    if type_name not in PROOF_IN_BODY:
        proof = {k for k in headers if k.lower() != "content-type"}
        scheme = c.preset.scheme if isinstance(c, PresetConnector) else scheme_of(c)
        stripped = {scheme.header} if scheme is not None else proof
        assert stripped & proof, f"{type_name}: no proof header to strip"
        refused(body, {k: v for k, v in headers.items() if k not in stripped})
    # wrong secret (or key): what the right one signed, checked by a connector that
    # holds another
    other = wrong_config(type_name)
    if type_name in PUBLIC_KEY_TYPES:
        refused(body, {**headers, **_signed_by_other_key(type_name, body)})
    elif other is not None and type_name != "aws_sns":  # SNS: AWS's certificate, no secret
        refused(body, headers, build(type_name, "liar", other))


def tamper(body: bytes) -> bytes:
    """The body with one more field: different bytes and a different meaning."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body + b"&tampered=1"
    if isinstance(value, dict):
        return orjson.dumps({**value, "tampered": 1})
    if isinstance(value, list):
        return orjson.dumps([*value, {"tampered": 1}])
    return body + b" "


def _signed_by_other_key(type_name: str, body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    if type_name == "sendgrid":
        other = ec.generate_private_key(ec.SECP256R1())
        sig = other.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
                "X-Twilio-Email-Event-Webhook-Timestamp": stamp}
    key = ed25519.Ed25519PrivateKey.generate()
    if type_name == "discord":
        return {"X-Signature-Ed25519": key.sign(stamp.encode() + body).hex(),
                "X-Signature-Timestamp": stamp}
    return {"telnyx-signature-ed25519": base64.b64encode(
        key.sign(stamp.encode() + b"|" + body)).decode(), "telnyx-timestamp": stamp}


TIMESTAMPED = [t for t in CONFORMING
               if (s := scheme_of(build(t))) is not None and s.timestamped
               and not s.timestamp_pointer]


@pytest.mark.parametrize("type_name", TIMESTAMPED)
def test_a_stale_timestamp_is_refused(type_name: str, runner: asyncio.Runner) -> None:
    c = build(type_name)
    scheme = scheme_of(c)
    assert scheme is not None
    body = c.sample_body()
    old = time.time() - scheme.tolerance_seconds - 3600
    headers = {"Content-Type": "application/json",
               **scheme.sign(c.secrets[0], body, timestamp=old, delivery_id="d-1",
                             url=PUBLIC_URL)}
    with pytest.raises(SignatureError) as err:
        runner.run(outcome(c, request(body, headers)))
    assert err.value.reason == "stale_timestamp"


@pytest.mark.parametrize("type_name", ["discord", "sendgrid", "telnyx"])
def test_a_stale_timestamp_is_refused_by_public_key_types(type_name: str,
                                                          runner: asyncio.Runner) -> None:
    c = build(type_name)
    body = c.sample_body()
    old = str(int(time.time()) - 7200)
    if type_name == "discord":
        headers = {"X-Signature-Ed25519": ED25519_KEY.sign(old.encode() + body).hex(),
                   "X-Signature-Timestamp": old}
    elif type_name == "telnyx":
        headers = {"telnyx-signature-ed25519": base64.b64encode(ED25519_KEY.sign(
            old.encode() + b"|" + body)).decode(), "telnyx-timestamp": old}
    else:
        sig = ECDSA_KEY.sign(old.encode() + body, ec.ECDSA(hashes.SHA256()))
        headers = {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
                   "X-Twilio-Email-Event-Webhook-Timestamp": old}
    with pytest.raises(SignatureError) as err:
        runner.run(outcome(c, request(body, headers)))
    assert err.value.reason == "stale_timestamp"


ROTATABLE = [t for t in CONFORMING if "secret" in CASES[t] and t not in PROOF_IN_BODY]


@pytest.mark.parametrize("type_name", ROTATABLE)
def test_a_rotated_secret_still_verifies(type_name: str, sns: tuple[Fake, CertServer],
                                         runner: asyncio.Runner) -> None:
    """``secrets: [new, old]``: a delivery signed with the old one passes during rotation."""
    fake, _ = sns
    config = dict(CASES[type_name])
    secret = str(config.pop("secret"))
    rotated = build(type_name, "rotated", {**config, "secrets": [flip(secret), secret]})
    body, headers = valid(type_name, build(type_name), fake)
    runner.run(outcome(rotated, request(body, headers)))
    stale = build(type_name, "stale", {**config, "secrets": [flip(secret)]})
    with pytest.raises(SignatureError):  # and the rotated-out secret alone does not
        runner.run(outcome(stale, request(body, headers)))
