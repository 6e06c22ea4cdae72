"""Box: Box's own SDK test vector, and signatures made and checked by box-sdk-gen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from box_sdk_gen.internal.utils import compute_webhook_signature
from box_sdk_gen.managers.webhooks import WebhooksManager

from connectors.box import BoxConnector
from connectors.request import InboundRequest
from gateway.errors import SignatureError
from tests.helpers import settle

PRIMARY, SECONDARY = "SamplePrimaryKey", "SampleSecondaryKey"
BODY = ('{"type":"webhook_event","webhook":{"id":"1234567890"},"trigger":"FILE.UPLOADED",'
        '"source":{"id":"1234567890","type":"file","name":"Test.txt"}}')


def make(**config: Any) -> BoxConnector:
    return BoxConnector("box", BoxConnector.Config.model_validate(
        {"secrets": [PRIMARY, SECONDARY], **config}))


def request(body: str, headers: dict[str, str]) -> InboundRequest:
    return InboundRequest("POST", "http://gw/webhooks/box",
                          {k.lower(): v for k, v in headers.items()}, {}, body.encode(), None,
                          datetime.now(UTC))


def sdk_headers(body: str, *, at: datetime | None = None, escape: bool = False,
                primary: str = PRIMARY, secondary: str = SECONDARY) -> dict[str, str]:
    stamp = (at or datetime.now(UTC)).replace(microsecond=0).isoformat()
    headers = {"box-delivery-id": "f96bb54b-ee16-4fc5-aa65-8c2d9e5b546f",
               "box-delivery-timestamp": stamp, "box-signature-algorithm": "HmacSHA256",
               "box-signature-version": "1"}
    headers["box-signature-primary"] = str(compute_webhook_signature(
        body, headers, primary, escape_body=escape))
    headers["box-signature-secondary"] = str(compute_webhook_signature(
        body, headers, secondary, escape_body=escape))
    return headers


def test_box_sdk_test_vector() -> None:
    # box-python-sdk test/box_sdk_gen/test/webhooks.py (the docs page prints this body and
    # these signatures, with keys that do not reproduce them; the SDK's keys do)
    headers = {"box-delivery-timestamp": "2020-01-01T00:00:00-07:00",
               "box-signature-algorithm": "HmacSHA256", "box-signature-version": "1",
               "box-signature-primary": "6TfeAW3A1PASkgboxxA5yqHNKOwFyMWuEXny/FPD5hI=",
               "box-signature-secondary": "v+1CD1Jdo3muIcbpv5lxxgPglOqMfsNHPV899xWYydo="}
    settle(make(tolerance_seconds=10**10).verify(request(BODY, headers)))
    settle(make(secrets=[SECONDARY], tolerance_seconds=10**10).verify(request(BODY, headers)))
    with pytest.raises(SignatureError) as err:
        settle(make().verify(request(BODY, headers)))
    assert err.value.reason == "stale_timestamp"


@pytest.mark.parametrize("name", ["スクリーンショット 2020-08-05.txt",
                                  "back\\\\slash \\\"quoted\\\" für 🎉.txt"])
@pytest.mark.parametrize("escape", [False, True])
def test_box_sdk_signatures_verify_raw_and_escaped(escape: bool, name: str) -> None:
    body = BODY.replace("Test.txt", name)
    settle(make().verify(request(body, sdk_headers(body, escape=escape))))
    settle(make(secrets=["rotated-away", SECONDARY]).verify(request(body, sdk_headers(body,
                                                                              escape=escape))))


def test_box_rejects_tampering_wrong_keys_stale_future_and_other_versions() -> None:
    c = make()
    with pytest.raises(SignatureError):
        settle(c.verify(request(BODY.replace("Test", "Evil"), sdk_headers(BODY))))
    with pytest.raises(SignatureError):
        settle(c.verify(request(BODY, sdk_headers(BODY, primary="x", secondary="y"))))
    for at in (datetime.now(UTC) - timedelta(minutes=11),
               datetime.now(UTC) + timedelta(minutes=5)):
        with pytest.raises(SignatureError) as err:
            settle(c.verify(request(BODY, sdk_headers(BODY, at=at))))
        assert err.value.reason == "stale_timestamp"
    with pytest.raises(SignatureError):
        settle(c.verify(request(BODY, {**sdk_headers(BODY), "box-signature-version": "2"})))
    with pytest.raises(SignatureError) as err:
        settle(c.verify(request(BODY, {"box-delivery-timestamp": "2020-01-01T00:00:00Z"})))
    assert err.value.reason == "missing_signature"


def test_box_signer_is_accepted_by_the_sdk_and_retries_share_the_event_id() -> None:
    c = make()
    body = BODY.replace('"type":"webhook_event"', '"type":"webhook_event","id":"evt-1"')
    headers = {k.lower(): v for k, v in c.sign(body.encode()).items()}
    assert WebhooksManager.validate_message(body, headers, PRIMARY, secondary_key=SECONDARY)
    settle(c.verify(request(body, headers)))
    retry = {**headers, "box-delivery-id": "another"}
    assert c.delivery_id(request(body, headers)) == c.delivery_id(request(body, retry)) == (
        "event:evt-1")
    [draft] = c.normalize(request(body, headers))
    assert draft.type == "FILE.UPLOADED"
