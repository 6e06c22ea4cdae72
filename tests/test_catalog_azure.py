"""Telnyx, Azure Event Grid, Teams outgoing webhooks, and the catalogue through the gateway.

Where each vector comes from (docs/research/providers/<type>.md has the sources):

- telnyx: Ed25519 signatures from a generated key, checked by Telnyx's own SDK
  (``telnyx.lib.verify_webhook_signature``, ``Telnyx(...).webhooks.unwrap``) first.
- azure_event_grid: Microsoft's published SubscriptionValidationEvent, and deliveries
  made by Azure's own EventGridPublisherClient (caught by a local server).
- teams_outgoing: Microsoft's published example key, HMACs computed the way Microsoft's
  Python sample does (no published body for its example HMAC).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from connectors.azure import EventGridConnector, TeamsOutgoingConnector
from connectors.errors import InvalidConnector
from connectors.telnyx import TelnyxConnector
from gateway.errors import SignatureError
from tests.catalog_support import (
    AUDIENCE,
    EG_KEY,
    EG_VALIDATION,
    PUSH_BODY,
    PUSHER,
    TELNYX_BODY,
    Google,
    KeyServer,
    make,
    now,
    req,
    sdk_deliveries,
    telnyx_headers,
)
from tests.helpers import base_config, consume, settle, thread_server, write_config

# -- Telnyx ---------------------------------------------------------------------------

def test_telnyx_signatures_telnyx_sdk_accepts_are_accepted_and_forgeries_refused() -> None:
    from telnyx import Telnyx
    from telnyx.lib import WebhookVerificationError, verify_webhook_signature

    key = ed25519.Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    public = base64.b64encode(raw).decode()
    headers = telnyx_headers(key, TELNYX_BODY, now())
    verify_webhook_signature(TELNYX_BODY, headers, public)  # Telnyx's SDK agrees, both ways
    sdk = Telnyx(api_key="KEY-for-tests-only", public_key=public)
    event: Any = sdk.webhooks.unwrap(TELNYX_BODY.decode(), headers=headers)
    assert event.data.event_type == "message.received"
    c = make(TelnyxConnector, public_key=public)
    settle(c.verify(req(TELNYX_BODY, headers)))
    [event] = c.normalize(req(TELNYX_BODY))
    assert (event.type, c.delivery_id(req(TELNYX_BODY))) == (
        "message.received", "b301ed3f-1490-491f-995f-6e64e69674d4")
    assert c.replay_key(req(TELNYX_BODY)) is None  # the id is inside the signed body
    spki = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    settle(make(TelnyxConnector, public_key=spki).verify(req(TELNYX_BODY, headers)))
    other = ed25519.Ed25519PrivateKey.generate()
    stale = telnyx_headers(key, TELNYX_BODY, now() - 301)
    with pytest.raises(WebhookVerificationError):
        verify_webhook_signature(TELNYX_BODY, stale, public)  # the SDK's 300 s too
    cases = [(TELNYX_BODY + b" ", headers, "invalid_signature"),
             (TELNYX_BODY, telnyx_headers(other, TELNYX_BODY, now()), "invalid_signature"),
             (TELNYX_BODY, {"telnyx-timestamp": headers["telnyx-timestamp"]},
              "missing_signature"),
             (TELNYX_BODY, stale, "stale_timestamp")]
    for body, h, reason in cases:
        with pytest.raises(SignatureError) as info:
            settle(c.verify(req(body, h)))
        assert info.value.reason == reason
    with pytest.raises(NotImplementedError):
        c.sign(TELNYX_BODY)
    with pytest.raises(InvalidConnector, match="public_key"):
        make(TelnyxConnector, public_key="bm90IGEga2V5")


# -- Azure Event Grid -------------------------------------------------------------------

def test_event_grid_validation_sdk_deliveries_and_the_shared_key() -> None:
    from azure.core.messaging import CloudEvent
    from azure.eventgrid import EventGridEvent, SystemEventNames

    c = make(EventGridConnector, secret=EG_KEY)
    assert SystemEventNames.EventGridSubscriptionValidationEventName.value == (
        "Microsoft.EventGrid.SubscriptionValidationEvent")
    validation = req(EG_VALIDATION, {"aeg-event-type": "SubscriptionValidation"},
                     {"code": EG_KEY})
    settle(c.verify(validation))
    reply = settle(c.handshake(validation))
    assert reply is not None
    assert reply.status == 200
    assert orjson.loads(reply.body) == {
        "validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    (grid_headers, grid), (cloud_headers, cloud) = sdk_deliveries()
    assert cloud_headers["Content-Type"].startswith("application/cloudevents-batch+json")
    for headers, body, parse in ((grid_headers, grid, EventGridEvent.from_dict),
                                 (cloud_headers, cloud, CloudEvent.from_dict)):
        r = req(body, headers)
        settle(c.verify(r))  # the SDK's aeg-sas-key header
        assert settle(c.handshake(r)) is None
        drafts = c.normalize(r)
        sdk: list[Any] = [parse(e) for e in orjson.loads(body)]  # the SDK reads the same fields
        assert [d.type for d in drafts] == [getattr(e, "event_type", None) or getattr(
            e, "type", None) for e in sdk]
        assert [d.timestamp for d in drafts] == [getattr(e, "event_time", None) or getattr(
            e, "time", None) for e in sdk]
    assert c.delivery_id(req(cloud)) == orjson.loads(cloud)[0]["id"]
    assert c.delivery_id(req(grid)).startswith("batch:")
    assert c.replay_key(req(grid)) == "body:" + hashlib.sha256(grid).hexdigest()
    assert c.sign(grid) == {"aeg-sas-key": EG_KEY}
    named = make(EventGridConnector, secret=EG_KEY, query_parameter="token")
    settle(named.verify(req(grid, {}, {"token": EG_KEY})))
    for connector, r, reason in (
            (c, req(grid), "missing_signature"),
            (c, req(grid, {}, {"code": EG_KEY + "x"}), "invalid_signature"),
            (c, req(grid, {"aeg-sas-key": "wrong"}), "invalid_signature"),
            (named, req(grid, {}, {"code": EG_KEY}), "missing_signature")):
        with pytest.raises(SignatureError) as info:
            settle(connector.verify(r))
        assert info.value.reason == reason


def test_event_grid_cloudevents_options_handshake() -> None:
    c = make(EventGridConnector, secret=EG_KEY)
    ask = {"WebHook-Request-Origin": "eventgrid.azure.net", "WebHook-Request-Rate": "120"}
    reply = c.challenge(req(b"", ask, {"code": EG_KEY}, method="OPTIONS"))
    assert reply is not None
    assert reply.status == 200
    assert reply.headers == {"WebHook-Allowed-Origin": "eventgrid.azure.net",
                             "WebHook-Allowed-Rate": "*", "Allow": "POST, OPTIONS"}
    unkeyed = c.challenge(req(b"", ask, method="OPTIONS"))
    other = c.challenge(req(b"", {"WebHook-Request-Origin": "evil.example"},
                            {"code": EG_KEY}, method="OPTIONS"))
    assert (unkeyed and unkeyed.status, other and other.status) == (401, 403)
    assert c.challenge(req(b"", ask, {"code": EG_KEY})) is None  # a POST is no handshake
    assert c.challenge(req(b"", {}, {"code": EG_KEY}, method="OPTIONS")) is None


# -- Microsoft Teams outgoing webhooks -------------------------------------------------

# learn.microsoft.com/microsoftteams/platform/.../add-outgoing-webhook: the example key
TEAMS_KEY = "vqF0En+Z0ucuRTM/01o2GuhMH3hKKk/N2bOmlM31zaA="
TEAMS_BODY = orjson.dumps({
    "type": "message", "id": "1485983408511", "timestamp": "2026-03-02T17:08:03.5215106Z",
    "serviceUrl": "https://smba.trafficmanager.net/amer/", "channelId": "msteams",
    "from": {"id": "29:1XJKJMvc5GBtc2JwZq0oj8tHZmzrQgFmB25ATiQWA85gQtHieVkKilBZ9XHoq9j7Zaqt7CZ-",
             "name": "Megan Bowen"},
    "conversation": {"isGroup": True, "id": "19:abc@thread.skype;messageid=1485983408511"},
    "text": "<at>Gateway</at> deploy status", "channelData": {"teamsTeamId": "19:x"}})


def teams_auth(body: bytes, key: str = TEAMS_KEY) -> dict[str, str]:
    """Microsoft's Python sample, step by step: the token base64-decoded is the HMAC key,
    HMAC-SHA256 over the UTF-8 body, base64, after "HMAC "."""
    digest = hmac.new(base64.b64decode(key), body, hashlib.sha256).digest()
    return {"Authorization": "HMAC " + base64.b64encode(digest).decode()}


def test_teams_outgoing_hmac_as_microsoft_computes_it() -> None:
    c = make(TeamsOutgoingConnector, secret=TEAMS_KEY)
    settle(c.verify(req(TEAMS_BODY, teams_auth(TEAMS_BODY))))
    assert c.sign(TEAMS_BODY) == teams_auth(TEAMS_BODY)
    [event] = c.normalize(req(TEAMS_BODY))
    assert (event.type, c.delivery_id(req(TEAMS_BODY))) == ("teams.message", "1485983408511")
    other = base64.b64encode(b"another-teams-outgoing-token-123").decode()
    cases = [(TEAMS_BODY + b" ", teams_auth(TEAMS_BODY), "invalid_signature"),
             (TEAMS_BODY, teams_auth(TEAMS_BODY, other), "invalid_signature"),
             (TEAMS_BODY, {}, "missing_signature"),
             (TEAMS_BODY, {"Authorization": teams_auth(TEAMS_BODY)["Authorization"].replace(
                 "HMAC", "Bearer")}, "invalid_signature")]
    for body, headers, reason in cases:
        with pytest.raises(SignatureError) as info:
            settle(c.verify(req(body, headers)))
        assert info.value.reason == reason
    with pytest.raises(InvalidConnector, match="base64"):
        make(TeamsOutgoingConnector, secret="not base64!")


# -- through the gateway, to Kafka --------------------------------------------------------

@pytest.mark.kafka
def test_deliveries_reach_kafka_through_the_gateway(
        kafka_bootstrap: str, data_dir: Path, tmp_path: Path, topic_prefix: str,
        google: Google, keys: KeyServer) -> None:
    google.publish(keys)
    telnyx = ed25519.Ed25519PrivateKey.generate()
    public = base64.b64encode(telnyx.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.{{source}}")
    cfg["connectors"] = {
        "tx": {"type": "telnyx", "config": {"public_key": public}},
        "eg": {"type": "azure_event_grid", "config": {"secret": EG_KEY}},
        "ps": {"type": "google_pubsub", "config": {"audience": AUDIENCE,
                                                   "service_account_email": PUSHER}}}
    deliveries = sdk_deliveries()
    with thread_server(write_config(tmp_path / "g.yaml", cfg)) as server:
        app: Any = server.server.config.app  # the Gateway; its runtime holds the connectors
        keys.attach(app.app.state.runtime.pipeline.webhooks["ps"])
        url = f"{server.url}/webhooks"
        signed = telnyx_headers(telnyx, TELNYX_BODY, now())
        first = httpx.post(f"{url}/tx", content=TELNYX_BODY, headers=signed)
        again = httpx.post(f"{url}/tx", content=TELNYX_BODY, headers=signed)
        assert (first.status_code, again.status_code, again.json()["duplicate"]) == (
            202, 200, True)
        validation = httpx.post(f"{url}/eg", params={"code": EG_KEY}, content=EG_VALIDATION,
                                headers={"aeg-event-type": "SubscriptionValidation"})
        assert (validation.status_code, validation.json()) == (
            200, {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"})
        ask = {"WebHook-Request-Origin": "eventgrid.azure.net"}  # CloudEvents abuse check
        options = httpx.options(f"{url}/eg", params={"code": EG_KEY}, headers=ask)
        assert (options.status_code, options.headers["webhook-allowed-origin"]) == (
            200, "eventgrid.azure.net")
        assert httpx.options(f"{url}/eg", headers=ask).status_code == 401
        assert httpx.options(f"{url}/tx", headers=ask).status_code == 405
        for headers, body in deliveries:  # as Azure's SDK sent them
            assert httpx.post(f"{url}/eg", content=body, headers=headers).status_code == 202
        bearer = {"Authorization": f"Bearer {google.token()}"}
        assert httpx.post(f"{url}/ps", content=PUSH_BODY, headers=bearer).status_code == 202
        for name, body, headers in (("tx", TELNYX_BODY + b" ", signed), ("eg", EG_VALIDATION, {}),
                                    ("ps", PUSH_BODY, {})):
            assert httpx.post(f"{url}/{name}", content=body, headers=headers).status_code == 401
        types = {source: sorted(orjson.loads(r.value)["type"] for r in consume(
            kafka_bootstrap, f"{topic_prefix}.{source}", expect=count, timeout=15))
            for source, count in (("telnyx", 1), ("azure_event_grid", 3), ("google_pubsub", 1))}
    assert types == {"telnyx": ["message.received"],
                     "azure_event_grid": ["Contoso.Items.ItemReceived",
                                          "Contoso.Items.ItemReceived",
                                          "Contoso.Items.ItemShipped"],
                     "google_pubsub": ["pubsub.message"]}
