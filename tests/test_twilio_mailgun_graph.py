"""Twilio (URL + sorted params), Mailgun and Microsoft Graph (proof inside the body)."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from connectors.bodysigned import AdyenConnector, GraphConnector, MailgunConnector
from connectors.request import InboundRequest
from connectors.twilio import TwilioConnector
from gateway.errors import SignatureError, Unnormalizable
from tests.helpers import settle


def make(cls: Any, **config: Any) -> Any:
    return cls("c", cls.Config.model_validate(config))


def request(body: bytes, headers: dict[str, str], url: str = "http://gw/webhooks/c",
            query: dict[str, str] | None = None) -> InboundRequest:
    return InboundRequest("POST", url, {k.lower(): v for k, v in headers.items()}, query or {},
                          body, None, datetime.now(UTC))


FORM = "application/x-www-form-urlencoded"
TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"


@pytest.mark.parametrize(("params", "signature"), [
    # twilio.com/docs/usage/security, the documented example
    ({"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
      "From": "+12349013030", "To": "+18005551212"}, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
    # twilio-python tests/unit/test_request_validator.py
    ({"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234",
      "From": "+14158675309", "To": "+18005551212"}, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
])
def test_twilio_published_vectors(params: dict[str, str], signature: str) -> None:
    c = make(TwilioConnector, secret="12345", public_url=TWILIO_URL)
    body = urlencode(params).encode()
    settle(c.verify(request(body, {"X-Twilio-Signature": signature, "Content-Type": FORM})))
    with pytest.raises(SignatureError):
        settle(c.verify(request(body.replace(b"1234", b"9999"),
                         {"X-Twilio-Signature": signature, "Content-Type": FORM})))


def test_twilio_json_body_sdk_vector() -> None:
    # twilio-python tests: JSON body, bodySHA256 in the URL
    body = b'{"property": "value", "boolean": true}'
    sha = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    c = make(TwilioConnector, secret="12345", public_url="https://mycompany.com/myapp.php")
    headers = {"X-Twilio-Signature": "a9nBmqA0ju/hNViExpshrM61xv4=",
               "Content-Type": "application/json"}
    settle(
        c.verify(request(body, headers, url=f"http://internal/webhooks/c?foo=1&bar=2&bodySHA256={sha}")))
    with pytest.raises(SignatureError, match="bodySHA256"):
        settle(c.verify(request(body + b" ", headers,
                         url=f"http://internal/webhooks/c?foo=1&bar=2&bodySHA256={sha}")))


def test_twilio_sdk_signs_what_we_verify() -> None:
    from twilio.request_validator import RequestValidator

    token, url = "twilio-" + str(time.time()), "https://gw.example.com/webhooks/sms"
    params = {"MessageSid": "SM1", "MessageStatus": "Delivered", "To": "+15551111111",
              "Body": "a+b=c & d"}
    signature = RequestValidator(token).compute_signature(url, params)
    c = make(TwilioConnector, secret=token, public_url=url)
    r = request(urlencode(params).encode(), {"X-Twilio-Signature": signature,
                                             "Content-Type": FORM})
    settle(c.verify(r))
    assert c.normalize(r)[0].type == "message.delivered"
    ours = c.sign(c.sample_body())["X-Twilio-Signature"]
    from urllib.parse import parse_qsl
    assert RequestValidator(token).validate(url, dict(parse_qsl(c.sample_body().decode())), ours)


def mailgun_body(key: str, stamp: str, token: str = "a" * 50) -> bytes:
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return orjson.dumps({"signature": {"timestamp": stamp, "token": token,
                                       "signature": signature},
                         "event-data": {"event": "delivered", "id": "CCXMjJ7nQi2N3BPigGOdgQ",
                                        "timestamp": 1770920772.1}})


def test_mailgun_sdk_accepts_what_we_accept() -> None:
    from mailgun.security import SecurityGuard

    key, stamp = "key-" + str(time.time()), str(int(time.time()))
    body = mailgun_body(key, stamp)
    sig = orjson.loads(body)["signature"]
    assert SecurityGuard.verify_webhook(key, sig["token"], sig["timestamp"], sig["signature"])
    c = make(MailgunConnector, secret=key)
    r = request(body, {})
    settle(c.verify(r))
    assert c.delivery_id(r) == "token:" + "a" * 50  # single use inside the dedup window
    [event] = c.normalize(r)
    assert event.type == "delivered"
    assert "signature" not in event.payload


def test_mailgun_rejects_wrong_key_stale_and_missing() -> None:
    stamp = str(int(time.time()))
    with pytest.raises(SignatureError):
        settle(
            make(MailgunConnector, secret="right").verify(
                request(mailgun_body("wrong", stamp), {})))
    with pytest.raises(SignatureError) as stale:
        settle(make(MailgunConnector, secret="k").verify(request(
            mailgun_body("k", str(int(time.time()) - 5000)), {})))
    assert stale.value.reason == "stale_timestamp"
    with pytest.raises(SignatureError) as missing:
        settle(make(MailgunConnector, secret="k").verify(request(b'{"event-data": {}}', {})))
    assert missing.value.reason == "missing_signature"


def test_graph_client_state_is_checked_and_stripped() -> None:
    c = make(GraphConnector, secret="client-state-secret")
    body = orjson.dumps({"value": [
        {"subscriptionId": "s1", "changeType": "created", "resource": "Users/1",
         "clientState": "client-state-secret"},
        {"subscriptionId": "s1", "changeType": "deleted", "resource": "Users/2",
         "clientState": "client-state-secret"}]})
    r = request(body, {})
    settle(c.verify(r))
    drafts = c.normalize(r)
    assert [d.type for d in drafts] == ["graph.created", "graph.deleted"]
    assert all("clientState" not in d.payload for d in drafts)
    forged = body.replace(b'"client-state-secret"}]', b'"guess"}]')
    with pytest.raises(SignatureError):
        settle(c.verify(request(forged, {})))


def test_graph_validation_token_is_echoed_as_text() -> None:
    c = make(GraphConnector, secret="cs")
    reply = c.challenge(request(b"", {}, query={"validationToken": "Validation: Token 123"}))
    assert reply is not None
    assert (reply.status, reply.body, reply.content_type) == (
        200, b"Validation: Token 123", "text/plain")


def test_mailgun_without_event_data_is_dead_lettered() -> None:
    stamp = str(int(time.time()))
    body = orjson.loads(mailgun_body("k", stamp))
    del body["event-data"]
    c = make(MailgunConnector, secret="k")
    r = request(orjson.dumps(body), {})
    settle(c.verify(r))
    with pytest.raises(Unnormalizable):
        c.normalize(r)


def test_twilio_wrong_token_and_stripped_header_are_rejected() -> None:
    params = urlencode({"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030",
                        "Digits": "1234", "From": "+12349013030", "To": "+18005551212"})
    headers = {"X-Twilio-Signature": "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "Content-Type": FORM}
    with pytest.raises(SignatureError):
        settle(make(TwilioConnector, secret="54321", public_url=TWILIO_URL).verify(
            request(params.encode(), headers)))
    with pytest.raises(SignatureError) as missing:
        settle(make(TwilioConnector, secret="12345", public_url=TWILIO_URL).verify(
            request(params.encode(), {"Content-Type": FORM})))
    assert missing.value.reason == "missing_signature"
    settle(make(TwilioConnector, secrets=["old", "12345"], public_url=TWILIO_URL).verify(
        request(params.encode(), headers)))  # rotation


# -- Adyen: an HMAC per notification item, inside the body ------------------------------

ADYEN_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"


def adyen_item(**fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pspReference": "7914073381342284", "merchantAccountCode": "TestMerchant",
        "merchantReference": "TestPayment-1407325143704",
        "amount": {"currency": "EUR", "value": 1130}, "eventCode": "AUTHORISATION",
        "success": "true", "eventDate": "2019-05-06T17:15:34.121+02:00"}
    item.update(fields)
    return item


def adyen_body(*items: dict[str, Any], key: str = ADYEN_KEY) -> bytes:
    """Items signed by Adyen's own library."""
    from Adyen.util import generate_notification_sig

    signed = [{**i, "additionalData": {"hmacSignature": generate_notification_sig(i, key)
                                                        .decode()}} for i in items]
    return orjson.dumps({"live": "false", "notificationItems": [
        {"NotificationRequestItem": i} for i in signed]})


def test_adyen_published_example() -> None:
    # Adyen's documented field values (pspReference 7914073381342284, 1130 EUR, ...), with
    # the key and signature of the worked example in Adyen's Python library tests
    item = adyen_item()
    item["additionalData"] = {"hmacSignature": "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="}
    body = orjson.dumps({"live": "false",
                         "notificationItems": [{"NotificationRequestItem": item}]})
    settle(make(AdyenConnector, secret=ADYEN_KEY).verify(request(body, {})))


@pytest.mark.parametrize("fields", [
    {},
    {"merchantReference": ":colons:are:fun", "originalReference": "881"},  # no escaping
    {"merchantReference": "\\\\back\\slashes", "success": "false"},
    {"eventCode": "REFUND", "amount": {"currency": "USD", "value": 0}},
])
def test_adyen_sdk_signed_items_verify(fields: dict[str, Any]) -> None:
    c = make(AdyenConnector, secrets=["00" * 32, ADYEN_KEY])  # rotation: either key
    body = adyen_body(adyen_item(**fields), adyen_item(pspReference="8815", **fields))
    settle(c.verify(request(body, {})))
    drafts = c.normalize(request(body, {}))
    assert [d.type for d in drafts] == [fields.get("eventCode", "AUTHORISATION")] * 2
    assert all("hmacSignature" not in d.payload["additionalData"] for d in drafts)
    assert drafts[0].timestamp == datetime(2019, 5, 6, 15, 15, 34, 121000, tzinfo=UTC)


def test_adyen_rejects_tampering_a_wrong_key_and_unsigned_items() -> None:
    c = make(AdyenConnector, secret=ADYEN_KEY)
    good = adyen_body(adyen_item())
    tampered = good.replace(b'"value":1130', b'"value":9130')
    with pytest.raises(SignatureError):
        settle(c.verify(request(tampered, {})))
    with pytest.raises(SignatureError):
        settle(c.verify(request(adyen_body(adyen_item(), key="AB" * 32), {})))
    # every item must verify, not only the first (the SDK's helper checks only the first)
    mixed = orjson.loads(adyen_body(adyen_item(), adyen_item(pspReference="2")))
    mixed["notificationItems"][1]["NotificationRequestItem"]["amount"]["value"] = 1
    with pytest.raises(SignatureError):
        settle(c.verify(request(orjson.dumps(mixed), {})))
    with pytest.raises(SignatureError) as err:
        settle(c.verify(request(orjson.dumps({"notificationItems": [
            {"NotificationRequestItem": adyen_item()}]}), {})))
    assert err.value.reason == "missing_signature"


def test_adyen_sample_is_valid_for_the_sdk_and_redeliveries_share_a_delivery_id() -> None:
    from Adyen.util import is_valid_hmac_notification

    c = make(AdyenConnector, secret=ADYEN_KEY)
    sample = c.sample_body()
    item = orjson.loads(sample)["notificationItems"][0]["NotificationRequestItem"]
    assert is_valid_hmac_notification(item, ADYEN_KEY)
    settle(c.verify(request(sample, {})))
    assert c.delivery_id(request(sample, {})) == c.delivery_id(request(sample + b" ", {}))


def test_adyen_keys_must_be_hex() -> None:
    with pytest.raises(ValueError, match="hex"):
        make(AdyenConnector, secret="not-hex-at-all")


@pytest.mark.parametrize(("public_url", "signed_url"), [
    ("https://gw.example.com/webhooks/sms", "https://gw.example.com:443/webhooks/sms"),
    ("https://gw.example.com:443/webhooks/sms", "https://gw.example.com/webhooks/sms"),
    ("http://gw.example.com/webhooks/sms?x=1", "http://gw.example.com:80/webhooks/sms?x=1"),
])
def test_twilio_url_with_or_without_the_default_port_verifies(
        public_url: str, signed_url: str) -> None:
    """Twilio may sign the URL with or without the scheme's default port; its own
    RequestValidator accepts either, and so must we."""
    from twilio.request_validator import RequestValidator

    token = "twilio-port-" + str(time.time())
    params = {"MessageSid": "SM9", "MessageStatus": "sent"}
    signature = RequestValidator(token).compute_signature(signed_url, params)
    assert RequestValidator(token).validate(public_url, params, signature)  # the oracle
    c = make(TwilioConnector, secret=token, public_url=public_url)
    settle(c.verify(request(urlencode(params).encode(), {"X-Twilio-Signature": signature,
                                                  "Content-Type": FORM})))
    other_port = signed_url.replace("gw.example.com", "gw.example.com:8443", 1).replace(
        ":443:8443", ":8443").replace(":80:8443", ":8443")
    with pytest.raises(SignatureError):  # another port is another URL
        settle(c.verify(request(urlencode(params).encode(), {
            "X-Twilio-Signature": RequestValidator(token).compute_signature(other_port, params),
            "Content-Type": FORM})))
