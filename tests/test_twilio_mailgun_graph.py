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

from connectors.base import InboundRequest
from connectors.bodysigned import GraphConnector, MailgunConnector
from connectors.twilio import TwilioConnector
from gateway.errors import SignatureError, Unnormalizable


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
    c.verify(request(body, {"X-Twilio-Signature": signature, "Content-Type": FORM}))
    with pytest.raises(SignatureError):
        c.verify(request(body.replace(b"1234", b"9999"),
                         {"X-Twilio-Signature": signature, "Content-Type": FORM}))


def test_twilio_json_body_sdk_vector() -> None:
    # twilio-python tests: JSON body, bodySHA256 in the URL
    body = b'{"property": "value", "boolean": true}'
    sha = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    c = make(TwilioConnector, secret="12345", public_url="https://mycompany.com/myapp.php")
    headers = {"X-Twilio-Signature": "a9nBmqA0ju/hNViExpshrM61xv4=",
               "Content-Type": "application/json"}
    c.verify(request(body, headers, url=f"http://internal/webhooks/c?foo=1&bar=2&bodySHA256={sha}"))
    with pytest.raises(SignatureError, match="bodySHA256"):
        c.verify(request(body + b" ", headers,
                         url=f"http://internal/webhooks/c?foo=1&bar=2&bodySHA256={sha}"))


def test_twilio_sdk_signs_what_we_verify() -> None:
    from twilio.request_validator import RequestValidator

    token, url = "twilio-" + str(time.time()), "https://gw.example.com/webhooks/sms"
    params = {"MessageSid": "SM1", "MessageStatus": "Delivered", "To": "+15551111111",
              "Body": "a+b=c & d"}
    signature = RequestValidator(token).compute_signature(url, params)
    c = make(TwilioConnector, secret=token, public_url=url)
    r = request(urlencode(params).encode(), {"X-Twilio-Signature": signature,
                                             "Content-Type": FORM})
    c.verify(r)
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
    c.verify(r)
    assert c.delivery_id(r) == "token:" + "a" * 50  # single use inside the dedup window
    [event] = c.normalize(r)
    assert event.type == "delivered" and "signature" not in event.payload


def test_mailgun_rejects_wrong_key_stale_and_missing() -> None:
    stamp = str(int(time.time()))
    with pytest.raises(SignatureError):
        make(MailgunConnector, secret="right").verify(request(mailgun_body("wrong", stamp), {}))
    with pytest.raises(SignatureError) as stale:
        make(MailgunConnector, secret="k").verify(request(
            mailgun_body("k", str(int(time.time()) - 5000)), {}))
    assert stale.value.reason == "stale_timestamp"
    with pytest.raises(SignatureError) as missing:
        make(MailgunConnector, secret="k").verify(request(b'{"event-data": {}}', {}))
    assert missing.value.reason == "missing_signature"


def test_graph_client_state_is_checked_and_stripped() -> None:
    c = make(GraphConnector, secret="client-state-secret")
    body = orjson.dumps({"value": [
        {"subscriptionId": "s1", "changeType": "created", "resource": "Users/1",
         "clientState": "client-state-secret"},
        {"subscriptionId": "s1", "changeType": "deleted", "resource": "Users/2",
         "clientState": "client-state-secret"}]})
    r = request(body, {})
    c.verify(r)
    drafts = c.normalize(r)
    assert [d.type for d in drafts] == ["graph.created", "graph.deleted"]
    assert all("clientState" not in d.payload for d in drafts)
    forged = body.replace(b'"client-state-secret"}]', b'"guess"}]')
    with pytest.raises(SignatureError):
        c.verify(request(forged, {}))


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
    c.verify(r)
    with pytest.raises(Unnormalizable):
        c.normalize(r)


def test_twilio_wrong_token_and_stripped_header_are_rejected() -> None:
    params = urlencode({"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030",
                        "Digits": "1234", "From": "+12349013030", "To": "+18005551212"})
    headers = {"X-Twilio-Signature": "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "Content-Type": FORM}
    with pytest.raises(SignatureError):
        make(TwilioConnector, secret="54321", public_url=TWILIO_URL).verify(
            request(params.encode(), headers))
    with pytest.raises(SignatureError) as missing:
        make(TwilioConnector, secret="12345", public_url=TWILIO_URL).verify(
            request(params.encode(), {"Content-Type": FORM}))
    assert missing.value.reason == "missing_signature"
    make(TwilioConnector, secrets=["old", "12345"], public_url=TWILIO_URL).verify(
        request(params.encode(), headers))  # rotation
