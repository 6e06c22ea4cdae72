"""Cloudinary, Braintree, Plivo and Airtable, each against its provider's own Python SDK.

Cloudinary (``cloudinary.utils``), Braintree (``braintree``: ``webhook_testing`` signs a
notification, ``webhook_notification.parse`` and ``verify`` check) and Plivo
(``plivo.utils.signature_v3``) sign what we verify and accept what we sign; their test
vectors are in fixtures/provider_vectors.json. Airtable ships no SDK: the community
``pyairtable`` checks what we sign, and the vector its docs' algorithm gives is here.
One test runs all four through a real server into Kafka.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest

from connectors.braintree import BraintreeConnector
from connectors.errors import Unnormalizable
from connectors.request import InboundRequest
from tests.catalog_support import build, rejected
from tests.helpers import (
    base_config,
    event_types,
    settle,
    thread_server,
    write_config,
)

URL = "https://hooks.example.com/webhooks/test"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def req(body: bytes, headers: dict[str, str], *, url: str = URL,
        method: str = "POST") -> InboundRequest:
    return InboundRequest(method, url, {k.lower(): v for k, v in headers.items()},
                          dict(parse_qsl(url.partition("?")[2])), body, "127.0.0.1",
                          datetime.now(UTC))


# -- Cloudinary ----------------------------------------------------------------------------

CLD_SECRET = "cld-api-secret"
CLD_BODY = b'{"notification_type":"upload","public_id":"dog","asset_id":"a1"}'


def test_cloudinary_sdk_accepts_what_we_sign_and_signs_what_we_verify() -> None:
    cloudinary = pytest.importorskip("cloudinary")
    from cloudinary.utils import (  # type: ignore[import-untyped]
        compute_hex_hash,
        verify_notification_signature,
    )

    cloudinary.config(api_secret=CLD_SECRET)
    c = build("cloudinary", CLD_SECRET)
    ours = c.sign(CLD_BODY)
    assert verify_notification_signature(CLD_BODY.decode(), ours["X-Cld-Timestamp"],
                                         ours["X-Cld-Signature"])
    assert not verify_notification_signature(CLD_BODY.decode() + " ", ours["X-Cld-Timestamp"],
                                             ours["X-Cld-Signature"])
    stamp = str(int(time.time()))
    for algorithm in ("sha1", "sha256"):  # an account's setting: both verify
        theirs = compute_hex_hash(f"{CLD_BODY.decode()}{stamp}{CLD_SECRET}", algorithm)
        headers = {"X-Cld-Timestamp": stamp, "X-Cld-Signature": theirs}
        settle(c.verify(req(CLD_BODY, headers)))
        rejected(c, req(CLD_BODY.replace(b"dog", b"cat"), headers))
        rejected(build("cloudinary", "another-secret"), req(CLD_BODY, headers))
    event = c.normalize(req(CLD_BODY, ours))[0]
    assert (event.type, event.payload["public_id"], event.raw) == ("upload", "dog", CLD_BODY)


def test_cloudinary_refuses_old_timestamps_as_its_sdk_does_and_not_future_ones() -> None:
    c = build("cloudinary", CLD_SECRET)

    def signed(stamp: int) -> InboundRequest:
        digest = hashlib.sha1(CLD_BODY + str(stamp).encode()  # noqa: S324 - Cloudinary's
                              + CLD_SECRET.encode())
        return req(CLD_BODY, {"X-Cld-Timestamp": str(stamp),
                              "X-Cld-Signature": digest.hexdigest()})

    now = int(time.time())
    rejected(c, signed(now - 7200 - 60), "stale_timestamp")  # the SDK's valid_for: 7200 s
    settle(c.verify(signed(now - 7000)))
    settle(c.verify(signed(now + 3600)))  # the SDK refuses only the past
    rejected(build("cloudinary", CLD_SECRET, tolerance_seconds=60), signed(now - 120),
             "stale_timestamp")
    rejected(c, req(CLD_BODY, {"X-Cld-Signature": "ab" * 20}), "missing_signature")
    rejected(c, req(CLD_BODY, {"X-Cld-Timestamp": str(now)}), "missing_signature")
    rejected(c, req(CLD_BODY, {"X-Cld-Timestamp": str(now), "X-Cld-Signature": "ab" * 24}))


# -- Airtable ------------------------------------------------------------------------------

AIRTABLE_SECRET = base64.b64encode(bytes(range(32))).decode()  # macSecretBase64
AIRTABLE_PING = (b'{"base":{"id":"app00000000000000"},"webhook":{"id":"ach00000000000000"},'
                 b'"timestamp":"2022-02-01T21:25:05.663Z"}')
# Airtable's documented algorithm (HMAC-SHA256 keyed with the decoded macSecretBase64,
# "hmac-sha256=" + hex) on its docs' sample ping; pyairtable accepts it
AIRTABLE_MAC = "hmac-sha256=feb60036212fc2ebb8707d53b49e8c010893104f3a867f789698bff4afbf8c78"


def test_airtable_pings_verify_as_pyairtable_checks_them_and_are_answered_204() -> None:
    from pyairtable.models import WebhookNotification

    c = build("airtable", AIRTABLE_SECRET)
    settle(c.verify(req(AIRTABLE_PING, {"X-Airtable-Content-MAC": AIRTABLE_MAC})))
    assert WebhookNotification.from_request(AIRTABLE_PING.decode(), AIRTABLE_MAC,
                                            AIRTABLE_SECRET).webhook.id == "ach00000000000000"
    ours = c.sign(AIRTABLE_PING)["X-Airtable-Content-MAC"]
    assert ours == AIRTABLE_MAC
    tampered = AIRTABLE_PING.replace(b"663", b"664")
    rejected(c, req(tampered, {"X-Airtable-Content-MAC": AIRTABLE_MAC}))
    with pytest.raises(ValueError, match="failed validation"):
        WebhookNotification.from_request(tampered.decode(), AIRTABLE_MAC, AIRTABLE_SECRET)
    rejected(build("airtable", base64.b64encode(b"x" * 32).decode()),
             req(AIRTABLE_PING, {"X-Airtable-Content-MAC": AIRTABLE_MAC}))
    event = c.normalize(req(AIRTABLE_PING, {}))[0]
    assert event.timestamp == datetime(2022, 2, 1, 21, 25, 5, 663000, UTC)
    ack = type(c).acknowledgement  # Airtable retries anything but 200/204 with no body
    assert ack is not None
    assert (ack.status, ack.body) == (204, b"")


# -- Braintree -----------------------------------------------------------------------------

BT_PUBLIC, BT_PRIVATE = "integration_public_key", "integration_private_key"


def braintree_gateway() -> Any:
    braintree = pytest.importorskip("braintree")
    return braintree.BraintreeGateway(braintree.Configuration(
        environment=braintree.Environment.Sandbox, merchant_id="merchant_id",
        public_key=BT_PUBLIC, private_key=BT_PRIVATE))


def test_braintree_sdk_notifications_verify_and_normalize_and_it_parses_ours() -> None:
    import braintree  # type: ignore[import-untyped]

    gateway = braintree_gateway()
    c = build("braintree", BT_PRIVATE, public_key=BT_PUBLIC)
    kind = braintree.WebhookNotification.Kind.SubscriptionWentPastDue
    sample = gateway.webhook_testing.sample_notification(kind, "sub_1")
    body = urlencode({"bt_signature": sample["bt_signature"],
                      "bt_payload": sample["bt_payload"]}).encode()
    settle(c.verify(req(body, FORM)))
    [event] = c.normalize(req(body, FORM))
    parsed = gateway.webhook_notification.parse(sample["bt_signature"], sample["bt_payload"])
    assert event.type == parsed.kind == "subscription_went_past_due"
    assert event.payload["subject"]["subscription"]["id"] == parsed.subscription.id == "sub_1"
    assert event.timestamp == parsed.timestamp.replace(tzinfo=UTC)

    tampered = urlencode({"bt_signature": sample["bt_signature"], "bt_payload":
                          sample["bt_payload"].replace(b"A", b"B", 1)}).encode()
    rejected(c, req(tampered, FORM))
    rejected(build("braintree", "other_private_key"), req(body, FORM))
    rejected(c, req(b"bt_payload=" + sample["bt_payload"], FORM), "missing_signature")
    relabelled = urlencode({"bt_signature": "someone|" + sample["bt_signature"].split("|")[1],
                            "bt_payload": sample["bt_payload"]}).encode()
    settle(c.verify(req(relabelled, FORM)))  # the key decides, not the label

    ours = dict(parse_qsl(c.sample_body().decode()))
    assert gateway.webhook_notification.parse(ours["bt_signature"],
                                              ours["bt_payload"]).kind == "check"


def test_braintree_answers_its_challenge_as_its_sdk_does() -> None:
    gateway = braintree_gateway()
    challenge = "20f9f8ed05f77439fe955c977e4c8a53"
    c = build("braintree", BT_PRIVATE, public_key=BT_PUBLIC)
    reply = c.challenge(req(b"", {}, url=f"{URL}?bt_challenge={challenge}", method="GET"))
    assert reply is not None
    assert reply.status == 200
    assert reply.body.decode() == gateway.webhook_notification.verify(challenge)
    bad = c.challenge(req(b"", {}, url=f"{URL}?bt_challenge=XYZ", method="GET"))
    assert bad is not None
    assert bad.status == 400
    without_key = build("braintree", BT_PRIVATE)  # no public_key: GET is not taken
    assert without_key.challenge(req(b"", {}, url=f"{URL}?bt_challenge={challenge}",
                                     method="GET")) is None


def signed_payload(c: BraintreeConnector, document: bytes) -> InboundRequest:
    return req(c.signed_form(base64.encodebytes(document)), FORM)


@pytest.mark.parametrize("document", [
    b"<notification><kind>check</kind",
    b"<transaction><id>1</id></transaction>",
    b'<?xml version="1.0"?><!DOCTYPE n [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    b"<notification><kind>&b;</kind></notification>",
    b'<notification><kind>x</kind><n type="integer">many</n></notification>',
], ids=["broken", "not-a-notification", "entities", "bad-integer"])
def test_an_authentic_braintree_payload_that_is_not_a_notification_is_unnormalizable(
        document: bytes) -> None:
    c = build("braintree", BT_PRIVATE)
    assert isinstance(c, BraintreeConnector)
    request = signed_payload(c, document)
    settle(c.verify(request))
    with pytest.raises(Unnormalizable):
        c.normalize(request)


def test_braintree_xml_becomes_what_its_sdk_parser_makes_of_it() -> None:
    c = build("braintree", BT_PRIVATE)
    assert isinstance(c, BraintreeConnector)
    document = (b'<notification><timestamp type="datetime">2026-01-02T03:04:05Z</timestamp>'
                b"<kind>dispute_opened</kind><subject><dispute><amount-disputed>"
                b'10.00</amount-disputed><reply-by-date nil="true"/><count type="integer">'
                b'3</count><open type="boolean">true</open><evidence type="array"><item>'
                b"<id>e1</id></item><item><id>e2</id></item></evidence></dispute></subject>"
                b"</notification>")
    [event] = c.normalize(signed_payload(c, document))
    assert event.payload["subject"] == {"dispute": {
        "amount_disputed": "10.00", "reply_by_date": None, "count": 3, "open": True,
        "evidence": [{"id": "e1"}, {"id": "e2"}]}}
    assert event.timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


# -- Plivo ---------------------------------------------------------------------------------

PLIVO_TOKEN = "MAMDA5ZDJIMDM1NZVMZTVmNzU1NTE3NTE3ZjU3ZjY"
PLIVO_URL = "https://example.com/plivo/answer"
PLIVO_FORM = {"CallUUID": "97ceeb52-58b6-11e1-86da-77300b68f8bb", "Event": "Hangup",
              "CallStatus": "completed", "From": "14155551234", "To": "14155556789"}


def test_plivo_sdk_signs_what_we_verify_and_accepts_what_we_sign() -> None:
    signature_v3 = pytest.importorskip("plivo.utils.signature_v3")
    nonce = "12345678901234567890"
    c = build("plivo", PLIVO_TOKEN, public_url=PLIVO_URL)
    url = f"{PLIVO_URL}?b=2&a=1"
    theirs = signature_v3.get_signature_v3(
        PLIVO_TOKEN.encode(), signature_v3.construct_post_url(url, dict(PLIVO_FORM)),
        nonce.encode()).decode()
    body = urlencode(PLIVO_FORM).encode()
    headers = {**FORM, "X-Plivo-Signature-V3": f"AAAA,{theirs}",
               "X-Plivo-Signature-V3-Nonce": nonce}
    settle(c.verify(req(body, headers, url=url)))
    assert c.normalize(req(body, headers, url=url))[0].type == "call.hangup"
    rejected(c, req(body.replace(b"Hangup", b"StartApp"), headers, url=url))
    rejected(c, req(body, {**headers, "X-Plivo-Signature-V3-Nonce": nonce[:-1] + "1"}, url=url))
    rejected(c, req(body, headers, url=f"{PLIVO_URL}?b=2&a=3"))
    rejected(c, req(b"Event=\xff", headers, url=url))  # not UTF-8: nothing Plivo signs
    # the main account's token signs X-Plivo-Signature-Ma-V3
    main = build("plivo", "main-account-token", public_url=PLIVO_URL)
    ma_headers = {**FORM, "X-Plivo-Signature-V3": theirs, "X-Plivo-Signature-V3-Nonce": nonce,
                  "X-Plivo-Signature-Ma-V3": signature_v3.get_signature_v3(
                      b"main-account-token", signature_v3.construct_post_url(
                          url, dict(PLIVO_FORM)), nonce.encode()).decode()}
    settle(main.verify(req(body, ma_headers, url=url)))

    get_url = f"{PLIVO_URL}?CallUUID=c1&Event=StartApp"
    signed_get = signature_v3.get_signature_v3(
        PLIVO_TOKEN.encode(), signature_v3.construct_get_url(get_url, {}), nonce.encode())
    get = req(b"", {"X-Plivo-Signature-V3": signed_get.decode(),
                    "X-Plivo-Signature-V3-Nonce": nonce}, url=get_url, method="GET")
    settle(c.verify(get))
    assert c.normalize(get)[0].payload == {"CallUUID": "c1", "Event": "StartApp"}
    other_get = req(b"", {}, url=f"{PLIVO_URL}?CallUUID=c2&Event=StartApp", method="GET")
    assert c.delivery_id(get) != c.delivery_id(other_get)  # the query is a GET's content

    sample = c.sample_body()
    ours = c.sign(sample)
    assert signature_v3.validate_v3_signature(
        "POST", PLIVO_URL, ours["X-Plivo-Signature-V3-Nonce"], PLIVO_TOKEN,
        ours["X-Plivo-Signature-V3"], dict(parse_qsl(sample.decode())))
    assert c.normalize(req(sample, ours))[0].type == "message.delivered"


def test_plivo_v2_alone_does_not_prove_a_body() -> None:
    c = build("plivo", PLIVO_TOKEN, public_url=PLIVO_URL)
    nonce = "05429567804466091622"
    v2 = base64.b64encode(hmac.new(PLIVO_TOKEN.encode(), (PLIVO_URL + nonce).encode(),
                                   hashlib.sha256).digest()).decode()
    rejected(c, req(urlencode(PLIVO_FORM).encode(), {
        **FORM, "X-Plivo-Signature-V2": v2, "X-Plivo-Signature-V2-Nonce": nonce}),
        "missing_signature")


# -- end to end: a real server, the real broker -------------------------------------------

@pytest.mark.kafka
def test_the_four_end_to_end(kafka_bootstrap: str, data_dir: Path, tmp_path: Path,
                             topic_prefix: str) -> None:
    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.{{source}}")
    public_url = "https://hooks.example.com/webhooks/pl"  # behind a proxy: what Plivo calls
    cfg["connectors"] = {
        "cld": {"type": "cloudinary", "config": {"secret": CLD_SECRET}},
        "at": {"type": "airtable", "config": {"secret": AIRTABLE_SECRET}},
        "bt": {"type": "braintree", "config": {"secret": BT_PRIVATE, "public_key": BT_PUBLIC}},
        "pl": {"type": "plivo", "config": {"secret": PLIVO_TOKEN, "public_url": public_url}},
    }
    with thread_server(write_config(tmp_path / "g.yaml", cfg)) as server, \
            httpx.Client(base_url=server.url, timeout=10) as client:
        cld = build("cloudinary", CLD_SECRET)
        assert client.post("/webhooks/cld", content=CLD_BODY,
                           headers=cld.sign(CLD_BODY)).status_code == 202
        assert client.post("/webhooks/cld", content=CLD_BODY, headers={
            **cld.sign(CLD_BODY), "X-Cld-Signature": "0" * 40}).status_code == 401

        for _ in range(2):  # received, then a duplicate: both 204 with no body
            r = client.post("/webhooks/at", content=AIRTABLE_PING,
                            headers={"X-Airtable-Content-MAC": AIRTABLE_MAC})
            assert (r.status_code, r.content) == (204, b"")

        bt = build("braintree", BT_PRIVATE, public_key=BT_PUBLIC)
        r = client.get("/webhooks/bt",
                       params={"bt_challenge": "20f9f8ed05f77439fe955c977e4c8a53"})
        assert r.text == "integration_public_key|d9b899556c966b3f06945ec21311865d35df3ce4"
        assert client.post("/webhooks/bt", content=bt.sample_body(),
                           headers=FORM).status_code == 202

        pl = build("plivo", PLIVO_TOKEN, public_url=public_url)
        sample = pl.sample_body()
        r = client.post("/webhooks/pl", content=sample, headers=pl.sign(sample))
        assert r.status_code == 202, r.text

        def types(source: str, expect: int) -> list[str]:
            return event_types(kafka_bootstrap, f"{topic_prefix}.{source}", expect)

        assert types("cloudinary", 1) == ["upload"]
        assert types("airtable", 1) == ["airtable.event"]  # not the duplicate
        assert types("braintree", 1) == ["check"]
        assert types("plivo", 1) == ["message.delivered"]
