"""Ingress authentication beyond signatures (allowed_ips, basic_auth, api_key) on a real
server: checked before the signature, audited as rejections, composed with signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import base_config, thread_server, write_config

pytestmark = pytest.mark.kafka

SECRET = "ingress-secret-8e2a"
PASSWORD = "ingress-password-51c0"
KEY = "ingress-key-3f9d"


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
            "Content-Type": "application/json"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(
        f"{user}:{password}".encode()).decode()}


def config(bootstrap: str, data_dir: Path, prefix: str, **server: Any) -> dict[str, Any]:
    cfg = base_config(bootstrap, data_dir, f"{prefix}.{{source}}")
    cfg["server"].update(server)
    hook = {"secret": SECRET}
    cfg["connectors"] = {
        "far": {"type": "webhook", "config": {**hook, "allowed_ips": ["10.0.0.0/8"]}},
        "near": {"type": "webhook", "config": {**hook, "allowed_ips": ["127.0.0.0/8",
                                                                      "::1/128"]}},
        "proxied": {"type": "webhook", "config": {**hook,
                                                  "allowed_ips": ["203.0.113.0/24"]}},
        "basic": {"type": "webhook", "config": {**hook, "basic_auth": {
            "username": "hooks", "passwords": ["old-pass-0a1b", PASSWORD]}}},
        "header": {"type": "webhook", "config": {**hook, "api_key": {
            "header": "X-Api-Key", "value": KEY}}},
        "query": {"type": "webhook", "config": {**hook, "api_key": {
            "query": "key", "value": KEY}}},
    }
    return cfg


def test_addresses_and_credentials_are_checked_before_the_signature(
        kafka_bootstrap: str, data_dir: Path, tmp_path: Path, topic_prefix: str) -> None:
    cfg = config(kafka_bootstrap, data_dir, topic_prefix)
    with thread_server(write_config(tmp_path / "g.yaml", cfg)) as server:
        def post(cid: str, headers: dict[str, str], *, forged: bool = False,
                 query: str = "") -> httpx.Response:
            body = b'{"n": "%s"}' % uuid.uuid4().hex.encode()
            sig = signed(body, "forged" if forged else SECRET)
            return httpx.post(f"{server.url}/webhooks/{cid}{query}", content=body,
                              headers={**sig, **headers})

        far = post("far", {})
        assert (far.status_code, far.json()["error"]) == (403, "forbidden")
        assert post("far", {}, forged=True).status_code == 403  # before the signature
        assert post("near", {}).status_code == 202
        assert post("proxied", {"X-Forwarded-For": "203.0.113.7"}).status_code == 403

        assert post("basic", {}).status_code == 401
        assert post("basic", basic("hooks", "wrong")).status_code == 401
        assert post("basic", basic("other", PASSWORD)).status_code == 401
        assert post("basic", basic("hooks", PASSWORD)).status_code == 202
        assert post("basic", basic("hooks", "old-pass-0a1b")).status_code == 202  # rotation
        # credentials do not replace the signature: they compose with it
        forged = post("basic", basic("hooks", PASSWORD), forged=True)
        assert forged.status_code == 401

        assert post("header", {"X-Api-Key": "nope"}).status_code == 401
        assert post("header", {"X-Api-Key": KEY}).status_code == 202
        assert post("query", {}, query="?key=nope").status_code == 401
        assert post("query", {}, query=f"?key={KEY}").status_code == 202

        lines = server.wait_audit(lambda line: line["outcome"] == "rejected", count=10)
        reasons = sorted(line["reason"] for line in lines)
        assert reasons.count("unauthorized_ip") == 3
        assert reasons.count("invalid_credentials") == 5
        assert reasons.count("invalid_signature") == 1
        for text in (PASSWORD, KEY):
            assert text not in (server.data_dir / "audit.jsonl").read_text()


def test_a_forwarded_address_counts_only_from_a_trusted_proxy(
        kafka_bootstrap: str, data_dir: Path, tmp_path: Path, topic_prefix: str) -> None:
    cfg = config(kafka_bootstrap, data_dir, topic_prefix, trusted_proxies=["127.0.0.1"])
    with thread_server(write_config(tmp_path / "g.yaml", cfg)) as server:
        body = b'{"n": 1}'
        ok = httpx.post(f"{server.url}/webhooks/proxied", content=body,
                        headers={**signed(body), "X-Forwarded-For": "203.0.113.7"})
        assert ok.status_code == 202
        other = httpx.post(f"{server.url}/webhooks/proxied", content=body,
                           headers={**signed(body), "X-Forwarded-For": "198.51.100.1"})
        assert other.status_code == 403
