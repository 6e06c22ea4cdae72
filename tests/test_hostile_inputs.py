"""Hostile timestamps and signature encodings: answered 401, never 500, in every connector.

Each request here is signed correctly over the hostile value itself, so the only reason
left to refuse it is the value: a timestamp that is not plain ASCII digits (or RFC 3339
where the provider sends that) is malformed (``missing_signature``), one outside the
window is stale. Python's ``int()`` takes Arabic-Indic digits, '+17', '1_700' and ' 17 ',
and fails on a superscript two (which ``str.isdigit`` calls a digit) and on 5000 digits;
none of that may reach a connector's arithmetic.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from connectors.aws_sns import SnsConnector
from connectors.base import Webhook
from connectors.presets import PresetConnector
from connectors.request import InboundRequest
from connectors.signing import HmacScheme
from connectors.timestamps import parse_epoch_seconds, parse_rfc3339_seconds
from connectors.webhook import WebhookConnector
from gateway.errors import SignatureError
from tests.connector_cases import (
    ADYEN_HEX_KEY,
    ECDSA_KEY,
    ED25519_KEY,
    PUBLIC_URL,
    SECRET,
    build,
    build_as,
)
from tests.helpers import base_config, settle, thread_server, write_config
from tests.test_aws_sns import CertServer, Fake

MALFORMED_OR_STALE = ("missing_signature", "stale_timestamp")
ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x660 + d) for d in range(10)))
FULLWIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))
SUPERSCRIPT = str.maketrans("0123456789", "\u2070\u00b9\u00b2\u00b3" + "".join(
    chr(0x2070 + d) for d in range(4, 10)))

Built = tuple[Webhook[Any], InboundRequest]


# -- the shared parsers ------------------------------------------------------------------

def test_epoch_seconds_are_ascii_digits_only() -> None:
    assert parse_epoch_seconds("1700000000") == 1_700_000_000.0
    assert parse_epoch_seconds("0") == 0.0
    assert parse_epoch_seconds("1700000000123", milliseconds=True) == 1_700_000_000.123
    assert parse_epoch_seconds("9" * 20) == float("9" * 20)
    for text in ("1700000000".translate(ARABIC_INDIC), "1700".translate(FULLWIDTH), "\xb2",
                 "1700".translate(SUPERSCRIPT), "+1700", "-1700", " 1700", "1700 ",
                 "17 00", "1_700", "1700.0", "1.7e9", "0x10", "nan", "NaN", "inf", "-inf",
                 "Infinity", "", "9" * 21, "9" * 5000, "1700\n", "1700\x00", "True"):
        assert parse_epoch_seconds(text) is None, repr(text)
        assert parse_epoch_seconds(text, milliseconds=True) is None, repr(text)
    for value in (1700000000, 1.7e9, None, b"1700", True):
        assert parse_epoch_seconds(value) is None


def test_rfc3339_is_the_only_date_form_read() -> None:
    assert parse_rfc3339_seconds("2023-11-14T22:13:20Z") == 1_700_000_000.0
    assert parse_rfc3339_seconds("2023-11-14T22:13:20.5+00:00") == 1_700_000_000.5
    assert parse_rfc3339_seconds("2023-11-14T23:13:20+01:00") == 1_700_000_000.0
    assert parse_rfc3339_seconds("2023-11-14T22:13:20") == 1_700_000_000.0  # UTC
    assert parse_rfc3339_seconds("2023-11-14T22:13:20.123456789Z") == pytest.approx(
        1_700_000_000.123456)  # Twitch sends nanoseconds
    for text in ("2023-11-14", "2023-W46-2", "20231114T221320Z", "2023-11-14x22:13:20Z",
                 "2023-11-14\xa022:13:20Z", "2023-11-14T22:13:20Z".translate(ARABIC_INDIC),
                 " 2023-11-14T22:13:20Z",
                 "2023-11-14T22:13:20Z\n", "2023-13-14T22:13:20Z", "2023-11-14T24:13:20Z",
                 "2023-11-14T22:13:20+24:00", "2023-11-14T22:13:20+0", "nan", "",
                 "9" * 5000, "+2023-11-14T22:13:20Z", "2023-11-14T22:13:20.1234567890Z"):
        assert parse_rfc3339_seconds(text) is None, repr(text)
    assert parse_rfc3339_seconds(1_700_000_000) is None


# -- every connector that checks a timestamp, signed over the hostile value -------------

def req(body: bytes, headers: dict[str, str], url: str = PUBLIC_URL) -> InboundRequest:
    return InboundRequest("POST", url, {k.lower(): v for k, v in headers.items()}, {}, body,
                          "127.0.0.1", datetime.now(UTC))


def discord(stamp: str) -> Built:
    body = b'{"type": 2, "data": {"name": "x"}}'
    signature = ED25519_KEY.sign(stamp.encode() + body).hex()
    return build("discord"), req(body, {"X-Signature-Ed25519": signature,
                                        "X-Signature-Timestamp": stamp})


def sendgrid(stamp: str) -> Built:
    body = b'[{"event": "delivered", "timestamp": 1700000000}]'
    signature = ECDSA_KEY.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return build("sendgrid"), req(body, {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp})


def mailgun_body(stamp: Any, token: str = "t" * 50, key: str = SECRET) -> bytes:
    mac = hmac.new(key.encode(), f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
    return orjson.dumps({"signature": {"timestamp": stamp, "token": token, "signature": mac},
                         "event-data": {"event": "delivered"}})


def mailgun(stamp: str) -> Built:
    return build("mailgun"), req(mailgun_body(stamp), {"Content-Type": "application/json"})


def box(stamp: str) -> Built:
    body = b'{"id": "evt-1", "trigger": "FILE.UPLOADED"}'
    mac = hmac.new(SECRET.encode(), body + stamp.encode(), hashlib.sha256).digest()
    return build("box"), req(body, {"BOX-DELIVERY-TIMESTAMP": stamp,
                                    "BOX-SIGNATURE-PRIMARY": base64.b64encode(mac).decode()})


def hmac_signed(type_name: str) -> Callable[[str], Built]:
    """A preset (or the generic webhook) signed by its own scheme, over ``stamp`` as is."""

    def make(stamp: str) -> Built:
        c = build(type_name)
        if isinstance(c, PresetConnector):
            scheme, key = c.preset.scheme, c.keys[0]
        else:
            assert isinstance(c, WebhookConnector)
            scheme, key = c.scheme, c.secrets[0]
        assert isinstance(scheme, HmacScheme)
        body = orjson.dumps({"type": "t", "webhookTimestamp": stamp})  # linear: in the body
        fields = {"timestamp": stamp, "delivery_id": "msg_1", "method": "POST",
                  "url": PUBLIC_URL}
        signature = scheme._encode(scheme._mac(key, scheme._message(body, fields)))
        headers = {}
        if scheme.layout == "params":
            headers[scheme.header] = (f"{scheme.timestamp_key}={stamp}{scheme.separator}"
                                      f"{scheme.signature_keys[0]}={signature}")
        else:
            headers[scheme.header] = scheme.prefix + signature
        if scheme.timestamp_header:
            headers[scheme.timestamp_header] = stamp
        if scheme.delivery_id_header:
            headers[scheme.delivery_id_header] = "msg_1"
        return c, req(body, headers)

    return make


def standard_webhooks_v1a(stamp: str) -> Built:
    body = b'{"type": "t"}'
    signature = ED25519_KEY.sign(f"msg_1.{stamp}.".encode() + body)
    return build("standard_webhooks"), req(body, {
        "webhook-id": "msg_1", "webhook-timestamp": stamp,
        "webhook-signature": "v1a," + base64.b64encode(signature).decode()})


def authenticate(connector: Webhook[Any], request: InboundRequest) -> None:
    asyncio.run(connector.verify(request))


EPOCH_SECONDS: dict[str, Callable[[str], Built]] = {
    "discord": discord, "sendgrid": sendgrid, "mailgun": mailgun,
    "standard_webhooks_v1a": standard_webhooks_v1a,
    **{name: hmac_signed(name) for name in (
        "slack", "stripe", "zoom", "mux", "calendly", "paddle", "standard_webhooks", "svix",
        "webhook")},
}
EPOCH_MILLISECONDS = {name: hmac_signed(name) for name in ("hubspot", "sanity", "linear")}
RFC3339 = {"box": box, **{name: hmac_signed(name) for name in ("twitch", "zendesk")}}


def hostile_epochs(now: str) -> dict[str, str]:
    """Written so that a lenient parser would read most of them as ``now``."""
    return {
        "arabic_indic_digits": now.translate(ARABIC_INDIC),
        "fullwidth_digits": now.translate(FULLWIDTH),
        "superscript_digits": now.translate(SUPERSCRIPT),
        "superscript_two": "\xb2",  # one latin-1 byte: it can come over HTTP
        "plus_sign": "+" + now,
        "minus_sign": "-" + now,
        "underscores": f"{now[:4]}_{now[4:]}",
        "inner_space": f"{now[:4]} {now[4:]}",
        "nbsp_before": "\xa0" + now,
        "newline_after": now + "\n",
        "nul_after": now + "\x00",
        "fraction": now + ".0",
        "exponent": f"{now[0]}.{now[1:]}e{len(now) - 1}",
        "hex": hex(int(now)),
        "nan": "nan", "NaN": "NaN", "inf": "inf", "minus_inf": "-inf", "Infinity": "Infinity",
        "empty": "",
        "21_digits": "1" + "0" * 20,
        "400_digits": "9" * 400,  # int() takes it; float arithmetic on it overflows
        "4300_digits": "9" * 4300,
        "5000_digits": "9" * 5000,  # past int()'s digit limit: ValueError
    }


def hostile_dates(now: datetime) -> dict[str, str]:
    iso = now.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {
        "arabic_indic_digits": iso.translate(ARABIC_INDIC),
        "fullwidth_digits": iso.translate(FULLWIDTH),
        "nbsp_separator": iso.replace("T", "\xa0"),
        "x_separator": iso.replace("T", "x"),
        "newline_after": iso + "\n",
        "week_date": now.strftime("%G-W%V-%u"),
        "bare_date": now.date().isoformat(),
        "basic_format": now.strftime("%Y%m%dT%H%M%SZ"),
        "offset_24h": iso[:-1] + "+24:00",
        "ten_fraction_digits": iso[:-1] + ".1234567890Z",
        "year_1_east": "0001-01-01T00:00:00+14:00",
        "year_9999_west": "9999-12-31T23:59:59-14:00",
        "epoch_digits": str(int(now.timestamp())),
        "nan": "nan", "empty": "", "5000_digits": "9" * 5000,
    }


# Stamps are made when a test runs, not when the module is collected: the whole suite
# takes minutes, and a "now" from collection time would be stale by then.
_STAMP_KINDS: dict[str, tuple[dict[str, Callable[[str], Built]], Callable[[], str]]] = {
    "seconds": (EPOCH_SECONDS, lambda: str(int(time.time()))),
    "milliseconds": (EPOCH_MILLISECONDS, lambda: str(int(time.time() * 1000))),
    "rfc3339": (RFC3339, lambda: datetime.now(UTC).replace(microsecond=0).isoformat()),
}


def cases(hostile: bool) -> list[Any]:
    out = []
    for kind, (builders, _) in _STAMP_KINDS.items():
        labels = (["now"] if not hostile else list(
            hostile_dates(datetime.now(UTC)) if kind == "rfc3339" else hostile_epochs("1")))
        out += [pytest.param(kind, name, label, id=f"{name}-{label}")
                for name in builders for label in labels]
    return out


def resolve(kind: str, name: str, label: str) -> tuple[Built, str, str]:
    """The signed request for ``label``'s stamp made now; the stamp; and "now" (for
    schemes that cannot tell a trimmed value from the clean one)."""
    builders, current = _STAMP_KINDS[kind]
    now = current()
    if label == "now":
        stamp = now
    elif kind == "rfc3339":
        stamp, now = hostile_dates(datetime.now(UTC))[label], ""
    else:
        stamp = hostile_epochs(now)[label]
    return builders[name](stamp), stamp, now


NOW = time.time()


@pytest.mark.parametrize(("kind", "name", "label"), cases(hostile=False))
def test_a_well_formed_timestamp_verifies(kind: str, name: str, label: str) -> None:
    """The builders sign correctly: what the hostile cases change is the timestamp alone."""
    built, _, _ = resolve(kind, name, label)
    authenticate(*built)


@pytest.mark.parametrize(("kind", "name", "label"), cases(hostile=True))
def test_a_hostile_timestamp_is_malformed_or_stale(kind: str, name: str, label: str) -> None:
    """Malformed or stale; or, where the header's own syntax trims whitespace around a
    value (``t=...,v1=...`` parameters) or an empty timestamp leaves no signature of a
    version to check, a signature that does not match the (clean) value read."""
    (connector, request), stamp, now = resolve(kind, name, label)
    with pytest.raises(SignatureError) as refused:
        authenticate(connector, request)
    reason = refused.value.reason
    assert reason in MALFORMED_OR_STALE or (
        reason == "invalid_signature" and stamp.strip() in (now, "")), reason


@pytest.mark.parametrize("stamp", [int(NOW) * 10**9, -int(NOW), 1.7e9, 10.0**300, True,
                                   None, [str(int(NOW))], {"t": 1}],
                         ids=["nanoseconds", "negative", "float", "huge_float", "true",
                              "null", "list", "object"])  # stable: no clock in the ids
def test_mailgun_timestamps_of_other_json_types_are_refused(stamp: Any) -> None:
    with pytest.raises(SignatureError) as refused:
        settle(build("mailgun").verify(req(mailgun_body(stamp), {})))
    assert refused.value.reason in MALFORMED_OR_STALE


def test_mailgun_takes_a_json_integer_timestamp() -> None:
    settle(build("mailgun").verify(req(mailgun_body(int(NOW)), {})))


# -- AWS SNS: Timestamp is RFC 3339 inside the signed message ----------------------------

def sns_authenticate(sns: tuple[Fake, CertServer], **fields: Any) -> None:
    fake, server = sns
    c = build_as(SnsConnector, "aws_sns")  # tolerance_seconds: 3600
    c.certs.transport = server.transport()

    async def run() -> None:
        try:
            await c.verify(req(orjson.dumps(fake.message(**fields)), {}))
        finally:
            await c.aclose()

    asyncio.run(run())


@pytest.mark.parametrize("stamp", [
    *hostile_dates(datetime.now(UTC)).values(), int(NOW), NOW, None, ["x"]],
    ids=[*hostile_dates(datetime.now(UTC)), "json_integer", "json_float", "null", "list"])
def test_sns_hostile_timestamps_are_malformed_or_stale(
        sns: tuple[Fake, CertServer], stamp: Any) -> None:
    sns_authenticate(sns)  # the well-formed one verifies
    with pytest.raises(SignatureError) as refused:
        sns_authenticate(sns, Timestamp=stamp)
    assert refused.value.reason in MALFORMED_OR_STALE


@pytest.mark.parametrize("signature", ["é" * 64, "\x00", "A" * 1_000_001, "=" * 5000])
def test_sns_signatures_that_are_not_base64_are_refused(
        sns: tuple[Fake, CertServer], signature: str) -> None:
    fake, server = sns
    c = build_as(SnsConnector, "aws_sns")
    c.certs.transport = server.transport()
    message = {**fake.message(), "Signature": signature}

    async def run() -> None:
        try:
            await c.verify(req(orjson.dumps(message), {}))
        finally:
            await c.aclose()

    with pytest.raises(SignatureError):
        asyncio.run(run())


# -- signatures in encodings that do not decode ------------------------------------------

BAD_ENCODINGS = {
    "non_ascii": "é" * 64,
    "arabic_digits": "١٢٣٤",
    "nul": "\x00",
    "latin1_high": "\xb2\xff" * 32,
    "huge_hex": "ab" * 500_000,
    "huge_base64": "A" * 1_000_000,
    "many_items": "v1,AAAA " * 100_000,
    "padding": "=" * 5000,
}


def with_signature(builder: Callable[[str], Built], header: str,
                   stamp: str) -> Callable[[str], Built]:
    def make(signature: str) -> Built:
        connector, request = builder(stamp)
        headers = dict(request.headers)
        headers[header.lower()] = signature
        return connector, req(request.body, headers)

    return make


def twilio(stamp: str) -> Built:
    return build("twilio"), req(b"MessageSid=SM1", {
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"})


def unsigned(type_name: str) -> Callable[[str], Built]:
    def make(stamp: str) -> Built:
        return build(type_name), req(b"{}", {})

    return make


SECONDS = str(int(NOW))
SIGNATURE_HEADERS = {
    "discord": with_signature(discord, "X-Signature-Ed25519", SECONDS),
    "sendgrid": with_signature(sendgrid, "X-Twilio-Email-Event-Webhook-Signature", SECONDS),
    "box": with_signature(box, "BOX-SIGNATURE-PRIMARY",
                          datetime.now(UTC).replace(microsecond=0).isoformat()),
    "twilio": with_signature(twilio, "X-Twilio-Signature", ""),
    "github": with_signature(unsigned("github"), "X-Hub-Signature-256", ""),
    "slack": with_signature(hmac_signed("slack"), "X-Slack-Signature", SECONDS),
    "stripe": with_signature(hmac_signed("stripe"), "Stripe-Signature", SECONDS),
    "standard_webhooks": with_signature(hmac_signed("standard_webhooks"), "webhook-signature",
                                        SECONDS),
    "shopify": with_signature(hmac_signed("shopify"), "X-Shopify-Hmac-Sha256", ""),
    "sanity": with_signature(hmac_signed("sanity"), "sanity-webhook-signature",
                             str(int(NOW * 1000))),
    "gitlab": with_signature(unsigned("gitlab"), "X-Gitlab-Token", ""),
    "postmark": with_signature(unsigned("postmark"), "Authorization", ""),
}


@pytest.mark.parametrize(("builder", "signature"), [
    pytest.param(builder, value, id=f"{name}-{label}")
    for name, builder in SIGNATURE_HEADERS.items() for label, value in BAD_ENCODINGS.items()])
def test_signature_headers_that_do_not_decode_are_refused(
        builder: Callable[[str], Built], signature: str) -> None:
    with pytest.raises(SignatureError):
        authenticate(*builder(signature))


@pytest.mark.parametrize("signature", list(BAD_ENCODINGS.values()), ids=list(BAD_ENCODINGS))
def test_signatures_inside_bodies_that_do_not_decode_are_refused(signature: str) -> None:
    adyen = {"notificationItems": [{"NotificationRequestItem": {
        "pspReference": "1", "eventCode": "AUTHORISATION", "success": "true",
        "amount": {"value": 1, "currency": "EUR"},
        "additionalData": {"hmacSignature": signature}}}]}
    mailgun = {"signature": {"timestamp": str(int(NOW)), "token": "t" * 50,
                             "signature": signature}, "event-data": {}}
    graph = {"value": [{"clientState": signature, "changeType": "created"}]}
    for type_name, body in (("adyen", adyen), ("mailgun", mailgun),
                            ("microsoft_graph", graph)):
        with pytest.raises(SignatureError):
            settle(build(type_name).verify(req(orjson.dumps(body), {})))
    assert ADYEN_HEX_KEY  # the adyen case's key is hex, as its config requires


# -- over HTTP: a latin-1 byte that str.isdigit() calls a digit --------------------------

@pytest.mark.kafka
def test_a_superscript_timestamp_over_http_is_401_not_500(
        kafka_bootstrap: str, data_dir: Path, tmp_path: Path) -> None:
    cfg = base_config(kafka_bootstrap, data_dir, "hostile.{source}")
    cfg["connectors"] = {"discord": {"type": "discord", "config": {
        "public_key": build("discord").config.public_key}},
        "sendgrid": {"type": "sendgrid", "config": {
            "public_key": build("sendgrid").config.public_key}}}
    body = b'{"type": 2}'
    with thread_server(write_config(tmp_path / "gateway.yaml", cfg)) as server:
        for path, stamp_header, sig_header in (
                ("discord", "X-Signature-Timestamp", "X-Signature-Ed25519"),
                ("sendgrid", "X-Twilio-Email-Event-Webhook-Timestamp",
                 "X-Twilio-Email-Event-Webhook-Signature")):
            for stamp in (b"\xb2", b"\xb9\xb2\xb3", b"9" * 5000, b"9" * 400):
                r = httpx.post(f"{server.url}/webhooks/{path}", content=body,
                               headers={stamp_header.encode(): stamp,
                                        sig_header.encode(): b"00" * 64})
                assert r.status_code == 401, (path, stamp[:10], r.status_code, r.text)
                assert r.json()["error"] == "unauthorized"
