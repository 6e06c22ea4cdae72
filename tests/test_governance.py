"""Governance: personal data handled before anything is stored (read back from Kafka, the
dead-letter topic and the data directory, for webhooks, /api/events and pollers), payload
contracts, and the configuration's checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.governance import Governance, GovernanceKeys, Policy, decrypt, parse_path
from tests.helpers import ROOT, base_config, consume, thread_server, write_config
from tests.test_polling import Api, api, poller_config  # noqa: F401 (the api fixture)

SECRET = "governance-webhook-secret"
HASH_KEY = "k" * 40
AES_KEY = base64.b64encode(bytes(range(32))).decode()
EMAIL, PHONE, NAME = "ada@example.com", "+44 20 7946 0958", "Ada Lovelace"
CARDS = ("4242424242424242", "5555555555554444", "378282246310005")
RAW = (EMAIL, NAME, *CARDS)  # none of these may be stored anywhere (the phone's tail may)
KEYS = GovernanceKeys.model_validate({"hash_key": HASH_KEY, "encryption_keys": {"k1": AES_KEY},
                                      "encryption_key": "k1"})
GOVERNANCE: dict[str, Any] = {
    "owner": "payments-team", "classification": "restricted",
    "pii": [{"path": "$.customer.email", "handling": "hash"},
            {"path": "$.customer.phone", "handling": "mask", "keep_last": 4},
            {"path": "$.customer.name", "handling": "encrypt"},
            "$.card.number", "$.items[*].card.number"],
    "pii_handling": "exclude",
    "schemas": {"payment": {"type": "object", "required": ["amount"],
                            "properties": {"amount": {"type": "integer"}}}}}


def payment(**over: Any) -> dict[str, Any]:
    return {"type": "payment.created", "amount": 1200,
            "customer": {"email": EMAIL, "phone": PHONE, "name": NAME},
            "card": {"number": CARDS[0], "brand": "visa"},
            "items": [{"sku": "a", "card": {"number": CARDS[1]}},
                      {"sku": "b", "card": {"number": CARDS[2]}}], **over}


def hashed(value: str) -> str:
    return "hmac-sha256:" + hmac.new(HASH_KEY.encode(), value.encode(),
                                     hashlib.sha256).hexdigest()


def assert_handled(payload: dict[str, Any]) -> None:
    customer = payload["customer"]
    assert customer["email"] == hashed(EMAIL)  # joinable: the same for every event
    assert customer["phone"] == "****0958"
    assert decrypt(KEYS, customer["name"]) == NAME
    assert payload["card"] == {"brand": "visa"}
    assert payload["items"] == [{"sku": "a", "card": {}}, {"sku": "b", "card": {}}]


# -- the policy ------------------------------------------------------------------------


def test_paths() -> None:
    assert parse_path("$.a.b") == ("a", "b")
    assert parse_path("$.items[*].card.number") == ("items", None, "card", "number")
    assert parse_path("$['a b'][0]") == ("a b", 0)
    for bad in ("a.b", "$", "$.a..b", "$.a[x]", "$.a b"):
        with pytest.raises(ValueError, match=r"starts with|cannot read|name a field"):
            parse_path(bad)


def test_every_handling_and_the_payload_left_alone() -> None:
    policy = Policy(Governance.model_validate(GOVERNANCE), KEYS, ROOT)
    original = payment()
    handled = policy.handle(original)
    assert_handled(handled)
    assert original == payment()  # a copy is handled
    assert policy.handle(payment(customer=None))["customer"] is None  # absent paths pass
    assert policy.manifest[0] == {"path": "$.customer.email", "handling": "hash"}
    assert policy.manifest[3] == {"path": "$.card.number", "handling": "exclude"}


def test_encryption_is_aes_gcm_with_the_key_id_bound() -> None:
    """The oracle is cryptography's AESGCM itself: nonce, ciphertext, key id as AAD."""
    policy = Policy(Governance.model_validate(GOVERNANCE), KEYS, ROOT)
    token = policy.handle(payment())["customer"]["name"]
    scheme, key_id, data = token.split(":")
    raw = base64.urlsafe_b64decode(data)
    assert (scheme, key_id) == ("enc", "k1")
    assert AESGCM(bytes(range(32))).decrypt(raw[:12], raw[12:], b"k1") == b'"Ada Lovelace"'
    assert token != policy.handle(payment())["customer"]["name"]  # a fresh nonce each time
    altered = raw[:-1] + bytes([raw[-1] ^ 1])  # one bit of the tag flipped
    with pytest.raises(ValueError, match="does not decrypt"):
        decrypt(KEYS, f"enc:k1:{base64.urlsafe_b64encode(altered).decode()}")
    with pytest.raises(ValueError, match="no key 'k9'"):
        decrypt(KEYS, "enc:k9:AAAA")


def test_a_contract_names_paths_and_keywords_never_values() -> None:
    policy = Policy(Governance.model_validate(GOVERNANCE), KEYS, ROOT)
    policy.check("payment.created", payment())
    policy.check("refund.created", {"amount": "any"})  # no schema for this type
    with pytest.raises(Exception, match="schema_violation") as caught:
        policy.check("payment.created", payment(amount=EMAIL))
    violations = caught.value.violations  # type: ignore[attr-defined]
    assert violations == [{"path": "$.amount", "keyword": "type"}]
    assert EMAIL not in orjson.dumps(violations).decode()


def test_configuration_problems_are_reported_with_their_key_paths(tmp_path: Path) -> None:
    cfg = base_config("127.0.0.1:1", tmp_path / "data", "t.{source}")
    cfg["governance"] = {"hash_key": "change-me-please-change-me-please-0000"}
    cfg["connectors"] = {
        "hashes": {"type": "push", "config": {"secret": "s" * 32},
                   "governance": {"pii": ["$.email"], "pii_handling": "encrypt"}},
        "secretive": {"type": "push", "config": {"secret": "t" * 32},
                      "governance": {"classification": "restricted"}},
        "broken": {"type": "push", "config": {"secret": "u" * 32},
                   "governance": {"schemas": {"x": "missing.json"}}},
        "badpath": {"type": "push", "config": {"secret": "v" * 32},
                    "governance": {"pii": ["email"]}},
    }
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path / "g.yaml", cfg), env={})
    text = str(caught.value)
    assert "governance.hash_key" in text  # a placeholder secret
    assert "connectors.hashes.governance: pii_handling encrypt needs" in text
    assert "connectors.secretive.governance: a restricted connector needs schemas" in text
    assert "connectors.broken.governance.schemas: unusable schema" in text
    assert "connectors.badpath.governance.pii[0].path" in text


# -- end to end ------------------------------------------------------------------------


def signed(body: bytes, delivery: str) -> dict[str, str]:
    ts = str(int(time.time()))
    mac = hmac.new(SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Signature": f"sha256={mac}", "X-Timestamp": ts, "X-Delivery-Id": delivery,
            "Content-Type": "application/json"}


@pytest.fixture
def gateway(kafka_bootstrap: str, data_dir: Path, topic_prefix: str, tmp_path: Path,
            api: Api) -> Iterator[tuple[Any, str, Path]]:  # noqa: F811
    schema = tmp_path / "payment.schema.json"
    schema.write_text(orjson.dumps(GOVERNANCE["schemas"]["payment"]).decode())
    governed = {**GOVERNANCE, "schemas": {"payment": "payment.schema.json"}}
    api.add(2, at=1)
    for item in api.items:
        item["customer"] = {"email": EMAIL, "phone": PHONE, "name": NAME}
    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.{{connector_id}}",
                      governance={"hash_key": HASH_KEY, "encryption_keys": {"k1": AES_KEY},
                                  "encryption_key": "k1"})
    cfg["connectors"] = {
        "payments": {"type": "webhook", "governance": governed, "config": {
            "secret": SECRET, "signature_header": "X-Signature", "prefix": "sha256=",
            "timestamp_header": "X-Timestamp", "id_header": "X-Delivery-Id",
            "event_type_pointer": "/type", "source": "shop"}},
        "pusher": {"type": "push", "governance": {**GOVERNANCE,
                                                  "classification": "confidential"},
                   "config": {"secret": "p" * 32, "sources": ["shop"]}},
        "items": {**poller_config(api, f"{topic_prefix}.items"), "governance": {
            "pii": ["$.customer.email", "$.customer.name"], "pii_handling": "hash"}},
    }
    with thread_server(write_config(tmp_path / "gateway.yaml", cfg)) as server:
        yield server, topic_prefix, tmp_path / "gateway.yaml"


@pytest.mark.kafka
def test_personal_data_never_reaches_kafka_the_dead_letters_or_the_disk(
        gateway: tuple[Any, str, Path], kafka_bootstrap: str, data_dir: Path) -> None:
    server, prefix, config = gateway
    hook = f"{server.url}/webhooks/payments"
    body = orjson.dumps(payment())
    r = httpx.post(hook, content=body, headers=signed(body, "d1"))
    assert r.status_code == 202, r.text
    broken = orjson.dumps(payment(amount="twelve"))  # breaks the contract
    r = httpx.post(hook, content=broken, headers=signed(broken, "d2"))
    assert r.status_code == 202, r.text
    assert r.json()["dead_lettered"]
    garbled = b'{"customer": {"email": "' + EMAIL.encode() + b'"'  # not JSON: no body kept
    r = httpx.post(hook, content=garbled, headers=signed(garbled, "d3"))
    assert r.json()["dead_lettered"]
    event = {"source": "shop", "type": "payment.created", "payload": payment(),
             "timestamp": "2026-12-02T12:00:00Z"}
    r = httpx.post(f"{server.url}/api/events", json=event,
                   headers={"Authorization": f"Bearer {'p' * 32}"})
    assert r.status_code == 202, r.text
    bad = {**event, "payload": payment(amount=None)}
    r = httpx.post(f"{server.url}/api/events", json=bad,
                   headers={"Authorization": f"Bearer {'p' * 32}"})
    assert r.status_code == 400
    assert r.json()["problems"] == [{"path": "$.payload.amount",
                                     "problem": "schema_violation: type"}]

    [webhook] = consume(kafka_bootstrap, f"{prefix}.payments", expect=1)
    envelope = orjson.loads(webhook.value)
    assert_handled(envelope["payload"])
    assert envelope["pii"][0] == {"path": "$.customer.email", "handling": "hash"}
    [pushed] = consume(kafka_bootstrap, f"{prefix}.pusher", expect=1)
    assert_handled(orjson.loads(pushed.value)["payload"])
    assert orjson.loads(pushed.value)["payload"]["customer"]["email"] == (
        envelope["payload"]["customer"]["email"])  # consumers join on the hash
    polled = consume(kafka_bootstrap, f"{prefix}.items", expect=2, timeout=30)
    assert [orjson.loads(p.value)["payload"]["customer"]["email"] for p in polled] == [
        hashed(EMAIL)] * 2

    dead = consume(kafka_bootstrap, f"{prefix}.dlq", expect=2)
    letters = [orjson.loads(r.value) for r in dead]
    [violation] = [v for v in letters if v["reason"] == "schema_violation"]
    assert violation["violations"] == [{"path": "$.amount", "keyword": "type"}]
    assert_handled(orjson.loads(violation["body"]))
    [unreadable] = [v for v in letters if v["reason"] != "schema_violation"]
    assert unreadable["body"] is None
    assert unreadable["body_base64"] is None

    everything = b"".join(r.value for r in [webhook, pushed, *polled, *dead])
    on_disk = b"".join(p.read_bytes() for p in data_dir.rglob("*") if p.is_file())
    for value in RAW:
        assert value.encode() not in everything
        assert value.encode() not in on_disk, value

    out = subprocess.run([sys.executable, "-m", "gateway", "decrypt", "--config", str(config),
                          envelope["payload"]["customer"]["name"]], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin"})
    assert out.stdout.strip() == orjson.dumps(NAME).decode(), out.stderr
    shown = subprocess.run([sys.executable, "-m", "gateway", "connectors", "show", "payments",
                            "--config", str(config)], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, env={"PATH": "/usr/bin"})
    info = orjson.loads(shown.stdout)
    assert info["governance"]["owner"] == "payments-team"
    assert info["governance"]["classification"] == "restricted"
    assert SECRET not in shown.stdout
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'gateway_schema_violations_total{connector_id="payments"} 1.0' in metrics
    assert 'gateway_schema_violations_total{connector_id="pusher"} 1.0' in metrics
    # data quality: the schema declares amount; both accepted payments had one
    assert ('gateway_connector_field_checks_total{connector_id="payments",field="amount"}'
            ' 1.0') in metrics
    assert 'gateway_connector_null_values_total{connector_id="payments"' not in metrics
