"""AfterShip, Todoist, Heroku, Front, Trello, Help Scout, QuickBooks, X, Squarespace,
ClickUp, Nylas, Mandrill, Persona, Checkr, Greenhouse, Ghost, Revolut, Paystack and
Authorize.net: what each does beyond its signature, whose vectors (recorded from the
provider's own code: its sample verifier, its SDK in another language) are in
fixtures/provider_vectors.json.

The handshakes (Trello's and Mandrill's HEAD, Front's signed ``sync`` challenge, Nylas's
challenge, X's CRC and its guard against being used to sign forged bodies), the answers
the providers insist on, how each body becomes events, and one run through a real server
into Kafka.
"""

from __future__ import annotations

import base64
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

from connectors.errors import InvalidConnector, Unnormalizable
from connectors.registry import available
from connectors.request import InboundRequest
from gateway.errors import SignatureError
from tests.catalog_support import build
from tests.helpers import (
    base_config,
    event_types,
    settle,
    thread_server,
    write_config,
)

URL = "https://hooks.example.com/webhooks/test"
VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "fixtures" / "provider_vectors.json").read_text())


def req(body: bytes, headers: dict[str, str], *, method: str = "POST", url: str = URL,
        query: dict[str, str] | None = None) -> InboundRequest:
    return InboundRequest(method, url, {k.lower(): v for k, v in headers.items()},
                          query or {}, body, "127.0.0.1", datetime.now(UTC))


def vector(provider: str, contains: str = "") -> dict[str, Any]:
    return next(v for v in VECTORS if v["provider"] == provider and contains in v["body"])


def b64mac(secret: str, message: bytes, digest: str = "sha256") -> str:
    return base64.b64encode(hmac.new(secret.encode(), message, digest).digest()).decode()


# -- X: the CRC challenge ------------------------------------------------------------------

X_SECRET = "xCS-8Nq3vLr0T2pW7yK4mZ1aB6dE9fG5hJ0kQ3sU7wX2cV4nM"


def test_x_answers_its_crc_as_its_own_library_does() -> None:
    c = build("x_activity", X_SECRET)
    token = "M2RkODJkZmMtYjlkYi00NmQ4LTk0MGUtM2JjYzkwM2Q4MjQ0"
    reply = c.challenge(req(b"", {}, method="GET", query={
        "crc_token": token, "nonce": "MTc2OTUxODI5MjkxNA"}))
    assert reply is not None
    # twitter-autohook 1.7.2 validateWebhook(crc_token, {consumer_secret}), recorded
    assert (reply.status, orjson.loads(reply.body)) == (
        200, {"response_token": "sha256=xgsCqemrwyyNk/Bv1sEfE1iEeUq5KdccWNy4UaKEzsY="})
    assert c.challenge(req(b"", {}, method="GET")) is None  # a GET without a token: 405


def test_x_crc_does_not_sign_what_could_be_a_delivery() -> None:
    """The CRC answer is the signature of a body equal to the token: a token that could
    be a delivery's body would make the gateway sign a forgery for anyone."""
    c = build("x_activity", X_SECRET)
    forged = b'{"for_user_id":"1","tweet_create_events":[{"text":"forged"}]}'
    reply = c.challenge(req(b"", {}, method="GET", query={"crc_token": forged.decode()}))
    assert reply is not None
    assert reply.status == 400
    assert b"sha256=" not in reply.body
    with pytest.raises(SignatureError):  # and so nothing signs the forged body
        settle(c.verify(req(forged, {"X-Twitter-Webhooks-Signature":
                                     "sha256=" + b64mac("other", forged)})))
    for token in ("", "a" * 257, "a b", "a&b", "a+b/c"):
        answer = c.challenge(req(b"", {}, method="GET", query={"crc_token": token}))
        assert answer is not None
        assert answer.status == 400, token


def test_x_events_are_typed_by_their_key_and_answered_200() -> None:
    v = vector("x_activity", "favorite_events")
    c = build("x_activity", v["secret"])
    r = req(v["body"].encode(), v["headers"])
    settle(c.verify(r))
    assert c.normalize(r)[0].type == "favorite_events"
    envelope = {"data": {"event_type": "profile.update.bio", "payload": {}}}
    assert c.normalize(req(orjson.dumps(envelope), {}))[0].type == "profile.update.bio"
    ack = type(c).acknowledgement  # X retries anything but 200
    assert ack is not None
    assert ack.status == 200


# -- Front, Trello, QuickBooks, Heroku, Todoist --------------------------------------------

def test_fronts_sync_challenge_is_echoed_only_once_signed() -> None:
    v = vector("front", '"sync"')
    c = build("front", v["secret"], tolerance_seconds=10**9)  # the vector's moment is past
    r = req(v["body"].encode(), v["headers"])
    settle(c.verify(r))
    reply = settle(c.handshake(r))
    assert reply is not None
    assert orjson.loads(reply.body) == {"challenge": "9f2c4e1a7b3d5f60"}
    forged = {**v["headers"], "X-Front-Signature": b64mac("other", b"x")}
    with pytest.raises(SignatureError):
        settle(c.verify(req(v["body"].encode(), forged)))
    event = c.normalize(req(vector("front", "inbound_received")["body"].encode(), {}))[0]
    assert (event.type, event.payload["payload"]["id"]) == ("inbound_received", "evt_55c8c149")


def test_trello_answers_its_head_and_signs_the_url_it_was_given() -> None:
    v = vector("trello", "voteOnCard")
    c = build("trello", v["secret"], public_url=v["url"])
    reply = c.challenge(req(b"", {}, method="HEAD"))
    assert reply is not None
    assert (reply.status, reply.body) == (200, b"")
    body = v["body"].encode()
    settle(c.verify(req(body, v["headers"])))
    with pytest.raises(SignatureError):  # one character more in the URL: another webhook
        settle(build("trello", v["secret"], public_url=v["url"] + "/").verify(
            req(body, v["headers"])))
    event = c.normalize(req(body, {}))[0]
    assert (event.type, c.delivery_id(req(body, {}))) == ("voteOnCard",
                                                         "51f9424bcd6e040f3c002412")


def test_quickbooks_cloudevents_become_events_and_the_old_shape_is_dead_lettered() -> None:
    cloud = vector("quickbooks", "specversion")
    c = build("quickbooks", cloud["secret"])
    events = c.normalize(req(cloud["body"].encode(), cloud["headers"]))
    assert [e.type for e in events] == ["qbo.account.created.v1", "qbo.class.created.v1"]
    assert events[0].timestamp == datetime(2025, 9, 10, 21, 31, 25, 179851, UTC)
    legacy = vector("quickbooks", "eventNotifications")
    settle(build("quickbooks", legacy["secret"]).verify(
        req(legacy["body"].encode(), legacy["headers"])))
    with pytest.raises(Unnormalizable):  # authentic, not events: a dead letter
        c.normalize(req(legacy["body"].encode(), legacy["headers"]))


def test_heroku_deduplicates_on_the_event_id_not_on_the_retry_s_body() -> None:
    v = vector("heroku", "sample-app-0301")
    c = build("heroku", v["secret"])
    retry = v["body"].replace("8a44f820-2354-489d-9a11-a793cbf49979",
                              "00000000-2354-489d-9a11-a793cbf49979")  # a new attempt id
    ids = {c.delivery_id(req(b.encode(), {})) for b in (v["body"], retry)}
    assert ids == {"d472a8bb-1a3c-4f78-aad1-995e6d0022ec"}
    assert c.normalize(req(v["body"].encode(), {}))[0].type == "app.update"


def test_mandrill_signs_the_url_as_entered_and_each_event_is_one() -> None:
    v = vector("mandrill", "blacklist")
    c = build("mandrill", v["secret"], public_url=v["url"])
    body = v["body"].encode()
    settle(c.verify(req(body, v["headers"])))
    with pytest.raises(SignatureError):  # the URL without its query: another webhook
        settle(build("mandrill", v["secret"], public_url=v["url"].split("?")[0]).verify(
            req(body, v["headers"])))
    events = c.normalize(req(body, v["headers"]))
    assert [e.type for e in events] == ["click", "blacklist.add"]
    assert events[0].timestamp == datetime.fromtimestamp(1700000120, UTC)
    reply = c.challenge(req(b"", {}, method="HEAD"))
    assert reply is not None
    assert (reply.status, reply.body) == (200, b"")
    assert c.normalize(req(b"mandrill_events=%5B%5D", {})) == []  # nothing: filtered
    with pytest.raises(Unnormalizable):
        c.normalize(req(b"mandrill_events=%7B%7D", {}))


def test_squarespace_keys_with_the_bytes_its_hex_secret_spells() -> None:
    v = vector("squarespace", "order.create")
    settle(build("squarespace", v["secret"].lower()).verify(
        req(v["body"].encode(), v["headers"])))
    with pytest.raises(InvalidConnector, match="hex"):  # refused at startup, not per request
        build("squarespace", "not-hex-at-all")


def test_nylas_echoes_its_challenge_and_deduplicates_on_the_notification_id() -> None:
    v = vector("nylas", "grant.deleted")
    c = build("nylas", v["secret"])
    reply = c.challenge(req(b"", {}, method="GET", query={"challenge": "abc-123"}))
    assert reply is not None
    assert (reply.status, reply.body) == (200, b"abc-123")
    retry = v["body"].replace('"webhook_delivery_attempt":1', '"webhook_delivery_attempt":2')
    assert {c.delivery_id(req(b.encode(), {})) for b in (v["body"], retry)} == {
        "Kkx2QQB7TWjWM3KXRQQn562394"}


def test_persona_verifies_while_a_secret_is_rotated_with_either_secret() -> None:
    rotating = vector("persona")  # any: the body is the same
    old = next(v for v in VECTORS if v["provider"] == "persona"
               and " t=" in v["headers"]["Persona-Signature"] and "9e8d" in v["secret"])
    new = next(v for v in VECTORS if v["provider"] == "persona"
               and " t=" in v["headers"]["Persona-Signature"] and "0f3c" in v["secret"])
    for v in (old, new):
        c = build("persona", v["secret"])
        c.preset.scheme.verify(  # type: ignore[attr-defined]
            req(v["body"].encode(), v["headers"]), c.keys, now=v["now"])  # type: ignore[attr-defined]
    c = build("persona", "wbhsec_neither")
    with pytest.raises(SignatureError):
        c.preset.scheme.verify(  # type: ignore[attr-defined]
            req(rotating["body"].encode(), old["headers"]), c.keys,  # type: ignore[attr-defined]
            now=old["now"])


def test_ghost_tells_identical_bodies_apart_by_their_signed_time() -> None:
    v = vector("ghost", "site.changed")
    c = build("ghost", v["secret"])
    first = req(v["body"].encode(), v["headers"])
    later = v["headers"]["X-Ghost-Signature"].replace("t=1767225600123", "t=1767225660123")
    second = req(v["body"].encode(), {**v["headers"], "X-Ghost-Signature": later})
    assert c.delivery_id(first) != c.delivery_id(second)  # two site.changed events
    assert c.delivery_id(first) == c.delivery_id(req(v["body"].encode(), v["headers"]))
    assert c.normalize(first)[0].type == "site.changed"


@pytest.mark.parametrize(("name", "status"), [
    ("todoist", 200), ("quickbooks", 200), ("x_activity", 200), ("airtable", 204),
    ("greenhouse", 200),
    ("aftership", None), ("heroku", None), ("front", None), ("help_scout", None)])
def test_the_answers_providers_insist_on(name: str, status: int | None) -> None:
    ack = available()[name].acknowledgement  # type: ignore[attr-defined]
    assert (ack.status if ack is not None else None) == status
    assert ack is None or ack.body == b""


# -- end to end: a real server, the real broker -------------------------------------------

@pytest.mark.kafka
def test_handshakes_and_answers_end_to_end(kafka_bootstrap: str, data_dir: Path,
                                           tmp_path: Path, topic_prefix: str) -> None:
    trello = vector("trello", "voteOnCard")
    quickbooks = vector("quickbooks", "specversion")
    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.{{source}}")
    cfg["connectors"] = {
        "tr": {"type": "trello", "config": {"secret": trello["secret"],
                                            "public_url": trello["url"]}},
        "x": {"type": "x_activity", "config": {"secret": X_SECRET}},
        "qb": {"type": "quickbooks", "config": {"secret": quickbooks["secret"]}},
        "hk": {"type": "heroku", "config": {"secret": "heroku-e2e"}},
    }
    with thread_server(write_config(tmp_path / "g.yaml", cfg)) as server, \
            httpx.Client(base_url=server.url, timeout=10) as client:
        head = client.head("/webhooks/tr")
        assert (head.status_code, head.content) == (200, b"")
        assert client.head("/webhooks/hk").status_code == 405  # a type without it
        assert client.post("/webhooks/tr", content=trello["body"].encode(),
                           headers=trello["headers"]).status_code == 202

        crc = client.get("/webhooks/x", params={"crc_token": "abc-123_="})
        expected = "sha256=" + b64mac(X_SECRET, b"abc-123_=")
        assert crc.json() == {"response_token": expected}
        forged = '{"for_user_id":"1","tweet_create_events":[]}'
        assert client.get(f"/webhooks/x?crc_token={quote(forged)}").status_code == 400

        r = client.post("/webhooks/qb", content=quickbooks["body"].encode(),
                        headers=quickbooks["headers"])
        assert (r.status_code, r.content) == (200, b"")  # Intuit wants exactly 200
        hk_body = b'{"id":"evt-1","resource":"dyno","action":"create"}'
        r = client.post("/webhooks/hk", content=hk_body,
                        headers={"Heroku-Webhook-Hmac-SHA256": b64mac("heroku-e2e", hk_body)})
        assert r.status_code == 202

        def types(source: str, expect: int) -> list[str]:
            return event_types(kafka_bootstrap, f"{topic_prefix}.{source}", expect)

        assert types("trello", 1) == ["voteOnCard"]
        assert types("quickbooks", 2) == ["qbo.account.created.v1", "qbo.class.created.v1"]
        assert types("heroku", 1) == ["dyno.create"]
