"""A signed webhook travels through a real uvicorn server to a real Kafka broker."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import orjson
import pytest

from gateway import tracing
from gateway.envelope import SCHEMA_PATH
from tests.helpers import ThreadServer, base_config, consume, thread_server, write_config

SECRET = "e2e-github-secret"
pytestmark = pytest.mark.kafka


def github_headers(body: bytes, event: str, delivery: str, secret: str = SECRET
                   ) -> dict[str, str]:
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={mac}", "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery, "Content-Type": "application/json"}


@pytest.fixture
def gateway(kafka_bootstrap: str, data_dir: Path, topic_prefix: str,
            tmp_path: Path) -> Iterator[tuple[ThreadServer, str]]:
    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.{{source}}")
    cfg["connectors"] = {
        "github-main": {"type": "github", "config": {
            "secret": SECRET, "events": ["pull_request", "push", "ping"]}},
        "github-nodedup": {"type": "github", "config": {"secret": SECRET,
                                                        "topic": f"{topic_prefix}.nodedup"}},
        "github-off": {"type": "github", "enabled": False, "config": {"secret": SECRET}},
        "github-limited": {"type": "github", "config": {
            "secret": SECRET, "topic": f"{topic_prefix}.limited",
            "rate_limit": {"per_second": 0.2, "burst": 2}}},
    }
    with thread_server(write_config(tmp_path / "gateway.yaml", cfg)) as server:
        yield server, topic_prefix


def test_pull_request_arrives_as_a_valid_envelope(
        gateway: tuple[ThreadServer, str], kafka_bootstrap: str, pull_request_body: bytes
) -> None:
    server, prefix = gateway
    delivery = str(uuid.uuid4())
    r = httpx.post(f"{server.url}/webhooks/github-main", content=pull_request_body,
                   headers=github_headers(pull_request_body, "pull_request", delivery))
    assert r.status_code == 202, r.text
    [event_id] = r.json()["event_ids"]

    again = httpx.post(f"{server.url}/webhooks/github-main", content=pull_request_body,
                       headers=github_headers(pull_request_body, "pull_request", delivery))
    assert again.status_code == 200
    assert again.json() == {"duplicate": True, "event_ids": [event_id]}

    [record] = consume(kafka_bootstrap, f"{prefix}.github", expect=1)
    envelope = orjson.loads(record.value)
    jsonschema.validate(envelope, json.loads(SCHEMA_PATH.read_text()))
    assert envelope["id"] == event_id
    assert envelope["type"] == "pull_request.opened"
    assert envelope["source"] == "github"
    assert envelope["connector_id"] == "github-main"
    assert envelope["timestamp"] == "2011-01-26T19:01:12Z"
    assert envelope["received_at"].endswith("Z")
    assert envelope["payload"] == orjson.loads(pull_request_body)
    assert record.key == b"github-main"
    headers = dict(record.headers)
    assert tracing.parse(headers.pop("traceparent").decode()) is not None  # a new trace
    assert headers == {
        "content-type": b"application/json", "event-id": event_id.encode(),
        "event-type": b"pull_request.opened", "event-source": b"github",
        "connector-id": b"github-main"}
    assert SECRET.encode() not in record.value

    outcomes = [line["outcome"] for line in server.wait_audit(
        lambda line: line["event_ids"] == [event_id] and line["outcome"] == "published")]
    assert outcomes == ["published"]
    mine = server.wait_audit(lambda line: line["event_ids"] == [event_id], count=3)
    assert [line["outcome"] for line in mine] == ["accepted", "duplicate", "published"]
    assert mine[0]["body_sha256"] == hashlib.sha256(pull_request_body).hexdigest()
    assert mine[0]["bytes"] == len(pull_request_body)


def test_redelivery_carries_the_same_id_on_the_topic(
        gateway: tuple[ThreadServer, str], kafka_bootstrap: str, pull_request_body: bytes,
        kafka_dedup_off: None) -> None:
    """Even when deduplication lets it through, a redelivery keeps its event id."""
    server, prefix = gateway
    delivery = str(uuid.uuid4())
    ids = []
    for _ in range(2):
        r = httpx.post(f"{server.url}/webhooks/github-nodedup", content=pull_request_body,
                       headers=github_headers(pull_request_body, "pull_request", delivery))
        ids.append(r.json()["event_ids"][0])
    records = consume(kafka_bootstrap, f"{prefix}.nodedup", expect=2)
    assert [orjson.loads(r.value)["id"] for r in records] == ids
    assert ids[0] == ids[1]


@pytest.fixture
def kafka_dedup_off(gateway: tuple[ThreadServer, str]) -> None:
    server, _ = gateway
    rt = server.gateway.state.runtime
    outbox = rt.buffer.outbox
    outbox.settings = outbox.settings.model_copy(update={"dedup_window_seconds": 0})


def _bad_requests(body: bytes) -> list[tuple[str, bytes, dict[str, str], str]]:
    good = github_headers(body, "push", str(uuid.uuid4()))
    tampered = body.replace(b"main", b"evil")
    no_sig = {k: v for k, v in good.items() if k != "X-Hub-Signature-256"}
    return [
        ("tampered body", tampered, good, "invalid_signature"),
        ("wrong secret", body, github_headers(body, "push", "d1", secret="wrong"),
         "invalid_signature"),
        ("missing header", body, no_sig, "missing_signature"),
        ("malformed header", body, {**good, "X-Hub-Signature-256": "md5=abc"},
         "invalid_signature"),
        ("truncated signature", body, {**good, "X-Hub-Signature-256":
                                       good["X-Hub-Signature-256"][:-2]}, "invalid_signature"),
    ]


def test_unauthentic_deliveries_are_401_audited_and_never_published(
        gateway: tuple[ThreadServer, str], kafka_bootstrap: str) -> None:
    server, prefix = gateway
    body = b'{"ref": "refs/heads/main", "head_commit": null}'
    for name, content, headers, reason in _bad_requests(body):
        request_id = f"bad-{uuid.uuid4().hex}"
        r = httpx.post(f"{server.url}/webhooks/github-main", content=content,
                       headers={**headers, "X-Request-Id": request_id})
        assert r.status_code == 401, name
        assert r.json()["error"] == "unauthorized"
        assert SECRET not in r.text
        [line] = server.wait_audit(
            lambda line, rid=request_id: line.get("client_request_id") == rid)
        assert (line["outcome"], line["reason"]) == ("rejected", reason), name
        assert line["event_ids"] == []
    # A valid delivery afterwards is the only thing on the topic.
    ok = httpx.post(f"{server.url}/webhooks/github-main", content=body,
                    headers=github_headers(body, "push", str(uuid.uuid4())))
    assert ok.status_code == 202
    records = consume(kafka_bootstrap, f"{prefix}.github", expect=1)
    assert [orjson.loads(r.value)["id"] for r in records] == ok.json()["event_ids"]
    assert SECRET.encode() not in (server.data_dir / "audit.jsonl").read_bytes()


def test_unknown_and_disabled_connectors_are_404(gateway: tuple[ThreadServer, str]) -> None:
    server, _ = gateway
    for cid in ("nope", "github-off"):
        r = httpx.post(f"{server.url}/webhooks/{cid}", content=b"{}")
        assert r.status_code == 404
        assert r.json()["error"] == "unknown_connector"
    assert [line["reason"] for line in server.wait_audit(
        lambda line: line["connector_id"] in ("nope", "github-off"), count=2)] == [
        "unknown_connector", "unknown_connector"]


def test_oversized_body_is_413_by_length_and_while_streaming(
        gateway: tuple[ThreadServer, str]) -> None:
    server, _ = gateway
    big = b"x" * 70_000  # the test config allows 65536
    r = httpx.post(f"{server.url}/webhooks/github-main", content=big)
    assert r.status_code == 413
    assert r.json()["error"] == "too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        for _ in range(70):
            yield b"y" * 1000

    r = httpx.post(f"{server.url}/webhooks/github-main", content=chunks())
    assert r.status_code == 413
    assert len(server.wait_audit(lambda line: line["reason"] == "too_large", count=2)) == 2


def test_ping_is_answered_and_audited_as_handshake(gateway: tuple[ThreadServer, str]) -> None:
    server, _ = gateway
    body = b'{"zen": "Design for failure.", "hook_id": 1}'
    r = httpx.post(f"{server.url}/webhooks/github-main", content=body,
                   headers=github_headers(body, "ping", str(uuid.uuid4())))
    assert r.status_code == 200
    assert server.wait_audit(lambda line: line["outcome"] == "handshake")


def test_events_outside_the_allow_list_are_acknowledged_and_dropped(
        gateway: tuple[ThreadServer, str], kafka_bootstrap: str) -> None:
    server, prefix = gateway
    body = b'{"action": "opened", "issue": {"number": 1}}'
    r = httpx.post(f"{server.url}/webhooks/github-main", content=body,
                   headers=github_headers(body, "issues", str(uuid.uuid4())))
    assert r.status_code == 200
    assert r.json()["filtered"] is True
    [line] = server.wait_audit(lambda line: line["outcome"] == "filtered")
    assert line["reason"] == "event_not_allowed"
    assert consume(kafka_bootstrap, f"{prefix}.github", timeout=2) == []


def test_authentic_but_unparseable_goes_to_the_dead_letter_topic(
        gateway: tuple[ThreadServer, str], kafka_bootstrap: str) -> None:
    server, prefix = gateway
    body = b'{"action": "opened", "pull_request": '  # cut off: not JSON
    delivery = str(uuid.uuid4())
    headers = github_headers(body, "pull_request", delivery)
    r = httpx.post(f"{server.url}/webhooks/github-main", content=body,
                   headers={**headers, "Authorization": "Bearer private-proxy-token"})
    assert r.status_code == 202
    assert r.json()["dead_lettered"] is True
    [record] = consume(kafka_bootstrap, f"{prefix}.dlq", expect=1)
    letter: dict[str, Any] = orjson.loads(record.value)
    assert letter["body"] == body.decode()
    # what a redrive needs: the delivery id and the headers, their secrets redacted
    assert letter["delivery_id"] == delivery
    assert letter["headers"]["x-github-event"] == "pull_request"
    assert letter["headers"]["x-hub-signature-256"] == "[redacted]"
    assert letter["headers"]["authorization"] == "[redacted]"
    assert "private-proxy-token" not in record.value.decode()
    assert headers["X-Hub-Signature-256"].split("=")[1] not in record.value.decode()
    assert letter["connector_id"] == "github-main"
    assert letter["reason"] == "body is not valid JSON"
    assert letter["id"] == r.json()["event_ids"][0]
    assert server.wait_audit(lambda line: line["outcome"] == "dead_lettered")
    assert consume(kafka_bootstrap, f"{prefix}.github", timeout=1) == []


def test_health_and_readiness(gateway: tuple[ThreadServer, str]) -> None:
    server, _ = gateway
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    body = orjson.dumps({"ref": "refs/heads/main", "n": uuid.uuid4().hex})
    assert httpx.post(f"{server.url}/webhooks/github-main", content=body, headers=github_headers(
        body, "push", str(uuid.uuid4()))).status_code == 202
    deadline = time.monotonic() + 10
    while "gateway_kafka_up 1.0" not in (
            lines := httpx.get(f"{server.url}/metrics").text.splitlines()):
        assert time.monotonic() < deadline, "the relay never reported Kafka up"
        time.sleep(0.2)
    accepted = [line for line in lines if line.startswith(
        'gateway_requests_total{connector_id="github-main",outcome="accepted"} ')]
    assert accepted
    assert float(accepted[0].split()[-1]) >= 1  # the delivery just counted
    assert any(line.startswith("gateway_buffer_events ") for line in lines)
    missing = httpx.get(f"{server.url}/nowhere")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"


def test_a_preset_travels_through_the_real_server_to_kafka(
        kafka_bootstrap: str, data_dir: Path, topic_prefix: str, tmp_path: Path) -> None:
    """Presets are wired into the same pipeline: a Stripe-signed event arrives on Kafka."""
    stripe = pytest.importorskip("stripe")
    secret = "whsec_e2e_" + uuid.uuid4().hex
    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.{{source}}")
    cfg["connectors"] = {"stripe-live": {"type": "stripe", "config": {"secret": secret}}}
    payload = '{"id": "evt_e2e", "type": "invoice.paid", "created": 1700000000}'
    with thread_server(write_config(tmp_path / "g.yaml", cfg)) as server:
        header = stripe.WebhookSignature.generate_signature_header(payload, secret)
        r = httpx.post(f"{server.url}/webhooks/stripe-live", content=payload,
                       headers={"Stripe-Signature": header,
                                "Content-Type": "application/json"})
        assert r.status_code == 202, r.text
        bad = httpx.post(f"{server.url}/webhooks/stripe-live", content=payload,
                         headers={"Stripe-Signature": header.replace("v1=", "v1=0")})
        assert bad.status_code == 401
        [record] = consume(kafka_bootstrap, f"{topic_prefix}.stripe", expect=1)
    envelope = orjson.loads(record.value)
    assert (envelope["type"], envelope["source"]) == ("invoice.paid", "stripe")
    assert envelope["timestamp"] == "2023-11-14T22:13:20Z"
    assert envelope["id"] == r.json()["event_ids"][0]


def test_handshakes_through_the_real_server(
        kafka_bootstrap: str, data_dir: Path, topic_prefix: str, tmp_path: Path) -> None:
    """GET challenges and unsigned validation requests reach the connector's challenge hook;
    a product connector's unknown event type is dead-lettered."""
    import base64 as b64
    import os

    from standardwebhooks.webhooks import Webhook

    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.{{source}}")
    claw_secret = "whsec_" + b64.b64encode(os.urandom(24)).decode()
    cfg["connectors"] = {
        "meta": {"type": "meta_whatsapp", "config": {"secret": "app", "verify_token": "vt"}},
        "graph": {"type": "microsoft_graph", "config": {"secret": "client-state"}},
        "claw": {"type": "openclaw", "config": {"secret": claw_secret}},
        "gh": {"type": "github", "config": {"secret": SECRET}},
    }
    with thread_server(write_config(tmp_path / "g.yaml", cfg)) as server:
        ok = httpx.get(f"{server.url}/webhooks/meta", params={
            "hub.mode": "subscribe", "hub.verify_token": "vt", "hub.challenge": "1158201444"})
        assert (ok.status_code, ok.text) == (200, "1158201444")
        assert ok.headers["content-type"].startswith("text/plain")
        bad = httpx.get(f"{server.url}/webhooks/meta", params={
            "hub.mode": "subscribe", "hub.verify_token": "no", "hub.challenge": "1"})
        assert bad.status_code == 403
        wrong = httpx.get(f"{server.url}/webhooks/gh")
        assert wrong.status_code == 405
        [line] = server.wait_audit(lambda line: line["request_id"]
                                   == wrong.headers["x-request-id"])
        assert (line["outcome"], line["reason"]) == ("rejected", "method_not_allowed")
        graph = httpx.post(f"{server.url}/webhooks/graph",
                           params={"validationToken": "Validation: Token"},
                           headers={"Content-Type": "text/plain"})
        assert (graph.status_code, graph.text) == (200, "Validation: Token")

        payload = '{"type": "model.deleted", "data": {}}'
        now = datetime.now(UTC)
        sig = Webhook(claw_secret).sign("msg_e2e", now, payload)
        stray = httpx.post(f"{server.url}/webhooks/claw", content=payload, headers={
            "webhook-id": "msg_e2e", "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": sig})
        assert stray.status_code == 202
        assert stray.json()["dead_lettered"] is True
        [letter] = consume(kafka_bootstrap, f"{topic_prefix}.dlq", expect=1)
        assert "unknown openclaw event type" in orjson.loads(letter.value)["reason"]
        assert server.wait_audit(lambda line: line["outcome"] == "handshake", count=2)


def test_gateway_sign_prints_a_curl_that_the_real_server_accepts(
        kafka_bootstrap: str, data_dir: Path, topic_prefix: str, tmp_path: Path) -> None:
    import os
    import shlex
    import subprocess
    import sys

    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.{{source}}")
    cfg["connectors"] = {
        "gh": {"type": "github", "config": {"secret": SECRET}},
        "hook": {"type": "webhook", "config": {"secret": "s", "timestamp_header": "X-Ts"}},
        "pay": {"type": "stripe", "config": {"secret": "whsec_sign_test"}},
        "sv": {"type": "svix", "config": {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
        "sms": {"type": "twilio", "config": {"secret": "tok", "public_url":
                                             "https://gw.example.com/webhooks/sms"}},
        "dc": {"type": "discord", "config": {"public_key": "ab" * 32}},
        "ady": {"type": "adyen", "config": {"secret": "0A1B" * 16}},
        "bx": {"type": "box", "config": {"secrets": ["primary-key", "secondary-key"]}},
    }
    path = write_config(tmp_path / "g.yaml", cfg)
    with thread_server(path) as server:
        for cid in ("gh", "hook", "pay", "sv", "sms", "ady", "bx"):
            out = subprocess.run(
                [sys.executable, "-m", "gateway", "sign", cid, "--config", str(path),
                 "--url", f"{server.url}/webhooks/{cid}"], capture_output=True, text=True,
                check=True, env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})
            argv = shlex.split(out.stdout)
            assert argv[0] == "curl"
            curl = subprocess.run([*argv, "-o", "/dev/null", "-w", "%{http_code}"],
                                  capture_output=True, text=True, check=True)
            assert curl.stdout == "202", (cid, curl.stdout, out.stdout)
        refused = subprocess.run([sys.executable, "-m", "gateway", "sign", "dc", "--config",
                                  str(path)], capture_output=True, text=True, check=False)
        assert refused.returncode == 2
        assert "private key" in refused.stderr


def test_rate_limit_answers_429_after_the_burst_and_forgeries_do_not_spend_it(
        gateway: tuple[ThreadServer, str], kafka_bootstrap: str, pull_request_body: bytes
) -> None:
    server, prefix = gateway
    url = f"{server.url}/webhooks/github-limited"

    def deliver(secret: str = SECRET) -> httpx.Response:
        # a distinct body each time: one body sent again under a fresh (unsigned) delivery
        # id is a replay, answered as a duplicate before any rate limit
        body = orjson.dumps({**orjson.loads(pull_request_body), "n": uuid.uuid4().hex})
        return httpx.post(url, content=body, headers=github_headers(
            body, "pull_request", str(uuid.uuid4()), secret))

    assert [deliver("forged").status_code for _ in range(3)] == [401, 401, 401]
    first, second, third = deliver(), deliver(), deliver()
    assert (first.status_code, second.status_code) == (202, 202), first.text
    assert third.status_code == 429
    assert third.json()["error"] == "rate_limited"
    assert 1 <= int(third.headers["Retry-After"]) <= 5  # 0.2/s: a token every 5 s
    rid = third.headers["x-request-id"]
    [line] = server.wait_audit(lambda line: line["request_id"] == rid)
    assert (line["outcome"], line["reason"], line["event_ids"]) == (
        "rejected", "rate_limited", [])
    assert deliver().status_code == 429  # still empty
    records = consume(kafka_bootstrap, f"{prefix}.limited", expect=2)
    assert sorted(r.value and orjson.loads(r.value)["id"] for r in records) == sorted(
        first.json()["event_ids"] + second.json()["event_ids"])
    # other connectors have no limit
    bodies = [orjson.dumps({**orjson.loads(pull_request_body), "n": n}) for n in range(4)]
    assert all(httpx.post(f"{server.url}/webhooks/github-nodedup", content=body,
                          headers=github_headers(body, "push",
                                                 str(uuid.uuid4()))).status_code == 202
               for body in bodies)


def test_an_event_too_large_for_kafka_is_refused_before_it_is_accepted(
        kafka_bootstrap: str, data_dir: Path, topic_prefix: str, tmp_path: Path) -> None:
    """Acknowledged, an event the broker refuses could never be published (the relay would
    retry it forever): the gateway answers 413 instead, for events and dead letters."""
    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.{{source}}")
    cfg["kafka"]["max_message_bytes"] = 8192
    cfg["kafka"]["dead_letter_topic"] = f"{topic_prefix}.dlq"
    cfg["connectors"] = {"gh": {"type": "github", "config": {"secret": SECRET}}}
    with thread_server(write_config(tmp_path / "gateway.yaml", cfg)) as server:
        url = f"{server.url}/webhooks/gh"

        def deliver(body: bytes) -> httpx.Response:
            return httpx.post(url, content=body, headers=github_headers(
                body, "push", str(uuid.uuid4())))

        small = deliver(orjson.dumps({"ref": "main", "pad": "x" * 1000}))
        # the broker counts the record batch: value, key, headers and their overhead
        big = deliver(orjson.dumps({"ref": "main", "pad": "x" * 7950}))
        big_garbage = deliver(b"\xff" * 7000)  # a dead letter: base64 makes it larger
        assert small.status_code == 202, small.text
        assert (big.status_code, big.json()["error"]) == (413, "too_large")
        assert big_garbage.status_code == 413
        lines = server.wait_audit(lambda line: line["reason"] == "too_large", count=2)
        assert [line["outcome"] for line in lines] == ["rejected", "rejected"]
        # while the gateway runs: its relay publishes what it acknowledged
        assert len(consume(kafka_bootstrap, f"{topic_prefix}.github", expect=1)) == 1
        assert consume(kafka_bootstrap, f"{topic_prefix}.dlq", timeout=3) == []


def test_an_unexpected_error_is_a_500_with_an_audit_line(
        gateway: tuple[ThreadServer, str], pull_request_body: bytes) -> None:
    """A bug answers 500 without a trace, and leaves the audit line every request gets."""
    server, _ = gateway
    runtime = server.gateway.state.runtime

    async def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    runtime.pipeline.webhook = broken
    r = httpx.post(f"{server.url}/webhooks/github-main", content=pull_request_body,
                   headers=github_headers(pull_request_body, "pull_request", "d-500"))
    assert r.status_code == 500
    assert r.json() == {"error": "internal", "detail": "internal error"}
    [line] = server.wait_audit(lambda line: line["request_id"] == r.headers["x-request-id"])
    assert (line["outcome"], line["reason"], line["connector_id"]) == (
        "failed", "internal", "github-main")
