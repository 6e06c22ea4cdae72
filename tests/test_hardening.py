"""Hostile and careless input cannot grow state, replay a captured delivery, or reach
Kafka with something it refuses; the configuration catches what would fail later."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest

from gateway.buffer import DEDUP_ROW_BYTES, PURGE_CHUNK, Buffer, Record
from gateway.buffer import outbox as outbox_module
from gateway.config import BufferConfig, load_config
from gateway.errors import ConfigError
from tests.helpers import ThreadServer, base_config, consume, thread_server, write_config

SECRET = "hardening-secret-d41f"


def gh_headers(body: bytes, event: str, delivery: str) -> dict[str, str]:
    mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={mac}", "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery, "Content-Type": "application/json"}


def hook_headers(body: bytes, stamp: str, delivery: str) -> dict[str, str]:
    mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Signature": mac, "X-Timestamp": stamp, "X-Delivery-Id": delivery,
            "Content-Type": "application/json"}


@pytest.fixture
def server(kafka_bootstrap: str, data_dir: Path, tmp_path: Path, topic_prefix: str
           ) -> Any:
    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.{{source}}")
    cfg["connectors"] = {
        "gh": {"type": "github", "config": {"secret": SECRET}},
        "hook": {"type": "webhook", "config": {
            "secret": SECRET, "timestamp_header": "X-Timestamp",
            "id_header": "X-Delivery-Id", "event_type_pointer": "/type"}},
        "pusher": {"type": "push", "config": {"secret": SECRET, "sources": ["s"]}},
    }
    with thread_server(write_config(tmp_path / "gateway.yaml", cfg)) as s:
        yield s


# -- replays ---------------------------------------------------------------------------

@pytest.mark.kafka
def test_a_captured_github_delivery_replayed_with_fresh_ids_is_a_duplicate(
        server: ThreadServer, kafka_bootstrap: str, topic_prefix: str) -> None:
    body = orjson.dumps({"ref": "refs/heads/main", "n": uuid.uuid4().hex})
    answers = [httpx.post(f"{server.url}/webhooks/gh", content=body,
                          headers=gh_headers(body, "push", str(uuid.uuid4())))
               for _ in range(20)]
    retyped = httpx.post(f"{server.url}/webhooks/gh", content=body,
                         headers=gh_headers(body, "issues", str(uuid.uuid4())))
    assert [a.status_code for a in answers] == [202] + [200] * 19
    assert all(a.json()["duplicate"] for a in answers[1:])
    assert retyped.status_code == 200
    assert retyped.json()["duplicate"]
    records = consume(kafka_bootstrap, f"{topic_prefix}.github", expect=1, settle=2)
    assert len(records) == 1
    assert orjson.loads(records[0].value)["type"] == "push"


@pytest.mark.kafka
def test_an_unsigned_id_is_backed_by_the_body_and_the_signed_timestamp(
        server: ThreadServer) -> None:
    body = orjson.dumps({"type": "order.paid", "n": uuid.uuid4().hex})
    stamp = str(int(time.time()))
    first = httpx.post(f"{server.url}/webhooks/hook", content=body,
                       headers=hook_headers(body, stamp, "d-1"))
    replay = httpx.post(f"{server.url}/webhooks/hook", content=body,
                        headers=hook_headers(body, stamp, "d-2"))
    later = httpx.post(f"{server.url}/webhooks/hook", content=body,  # signed anew, later
                       headers=hook_headers(body, str(int(stamp) + 1), "d-3"))
    assert (first.status_code, replay.status_code, later.status_code) == (202, 200, 202)


# -- unknown connector ids ---------------------------------------------------------------

@pytest.mark.kafka
def test_unknown_connector_ids_do_not_grow_metrics_or_audit_lines(server: ThreadServer) -> None:
    def unknown(text: str) -> float:  # the process's counters outlive one test's server
        series = 'gateway_requests_total{connector_id="_unknown",outcome="rejected"} '
        found = [line for line in text.splitlines() if line.startswith(series)]
        return float(found[0].split()[-1]) if found else 0.0

    first = httpx.get(f"{server.url}/metrics").text
    before, counted = len(first), unknown(first)
    with httpx.Client() as client:
        for _ in range(300):
            r = client.post(f"{server.url}/webhooks/{uuid.uuid4().hex * 300}", content=b"{}")
            assert r.status_code == 404
    text = httpx.get(f"{server.url}/metrics").text
    assert len(text) < before + 2000
    assert unknown(text) == counted + 300
    lines = server.wait_audit(lambda line: line["reason"] == "unknown_connector", count=300)
    assert len(lines) == 300
    assert max(len(line["connector_id"]) for line in lines) <= 103


# -- /api/events -----------------------------------------------------------------------

def _push(server: ThreadServer, events: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/api/events", content=json.dumps(events).encode(),
                      headers={"Authorization": f"Bearer {SECRET}"})


@pytest.mark.kafka
def test_api_events_too_deep_or_too_long_is_a_400_with_paths(server: ThreadServer) -> None:
    deep: Any = {}
    for _ in range(300):
        deep = {"a": deep}
    event = {"source": "s", "type": "t", "timestamp": "2026-01-01T00:00:00Z"}
    r = _push(server, [{**event, "payload": {"ok": 1}}, {**event, "payload": deep},
                       {**event, "type": "t" * 300, "payload": {}}])
    assert r.status_code == 400
    paths = sorted(p["path"] for p in r.json()["problems"])
    assert paths == ["$[1].payload", "$[2].type"]
    many = _push(server, [{"payload": 1}] * 500)  # four problems each
    assert many.status_code == 400
    assert len(many.json()["problems"]) == 100
    assert many.json()["more_problems"] == 1900


@pytest.mark.kafka
def test_an_event_type_past_the_bound_is_dead_lettered(
        server: ThreadServer, kafka_bootstrap: str, topic_prefix: str) -> None:
    body = orjson.dumps({"type": "x" * 300})
    r = httpx.post(f"{server.url}/webhooks/hook", content=body,
                   headers=hook_headers(body, str(int(time.time())), "long-type"))
    assert r.status_code == 202
    assert r.json()["dead_lettered"]
    [letter] = consume(kafka_bootstrap, f"{topic_prefix}.dlq", expect=1)
    assert "longer than 256" in orjson.loads(letter.value)["reason"]


# -- configuration ---------------------------------------------------------------------

def test_topics_are_checked_at_load_with_their_key_paths(tmp_path: Path) -> None:
    cfg: dict[str, Any] = {
        "kafka": {"topic": "events.{sourc}", "dead_letter_topic": "bad topic/x"},
        "connectors": {"a": {"type": "github", "config": {"secret": SECRET,
                                                          "topic": "x" * 300}},
                       "b": {"type": "github", "config": {"secret": SECRET,
                                                          "topic": "ok.{type}"}}}}
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path / "g.yaml", cfg), env={})
    problems = {p.path: p.message for p in err.value.problems}
    assert sorted(problems) == ["connectors.a.config.topic", "kafka.dead_letter_topic",
                                "kafka.topic"]
    assert "{sourc}" in problems["kafka.topic"]


def test_a_timestamp_header_with_an_unsigned_timestamp_is_a_config_error(
        tmp_path: Path) -> None:
    cfg = {"connectors": {"h": {"type": "webhook", "config": {
        "secret": SECRET, "timestamp_header": "X-Ts", "signed_payload": "{body}"}}}}
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path / "g.yaml", cfg), env={})
    assert [p.path for p in err.value.problems] == ["connectors.h.config"]
    assert "{timestamp}" in str(err.value)


def test_settings_never_show_a_secret(tmp_path: Path) -> None:
    cfg = {"connectors": {
        "h": {"type": "webhook", "config": {"secret": SECRET}},
        "p": {"type": "http_poll", "config": {
            "url": "https://api.example.org/items", "interval_seconds": 60,
            "headers": {"X-Api-Key": SECRET}, "auth": {"type": "bearer", "token": SECRET}}}}}
    loaded = load_config(write_config(tmp_path / "g.yaml", cfg), env={})
    shown = [repr(loaded.settings), str(loaded.settings), loaded.settings.model_dump_json(),
             repr(loaded.settings.model_dump()), repr(loaded.connectors),
             *(repr(c.config) for c in loaded.connectors.values())]
    assert not [text for text in shown if SECRET in text]


# -- deduplication state ---------------------------------------------------------------

def test_dedup_rows_count_toward_max_bytes_and_expire_in_chunks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def record(n: int) -> Record:
        return Record("t", b"k", b"v", f"id-{n}", "c", "t", "s")

    async def run() -> None:
        # A window no fill outlasts, however slow the machine; then the purge's clock is
        # moved past it (a real one-second window let early rows expire mid-fill).
        buffer = Buffer(tmp_path / "b.db", BufferConfig(max_bytes=20_000,
                                                        dedup_window_seconds=3600))
        await buffer.open()
        try:
            accepted = 0
            for n in range(400):  # each published at once: only the dedup rows remain
                try:
                    assert await buffer.outbox.submit(f"key-{n:04d}", [record(n)])
                except Exception:
                    break
                accepted += 1
                await buffer.outbox.ack(await buffer.outbox.fetch())
            key_bytes = len("key-0000") + DEDUP_ROW_BYTES
            assert accepted == 20_000 // key_bytes  # the bound is the dedup rows' bytes
            assert buffer.outbox.dedup_bytes == accepted * key_bytes
            later = time.time() + 3601  # the window has passed: every row expired
            monkeypatch.setattr(outbox_module, "time", SimpleNamespace(time=lambda: later))
            await buffer.outbox.purge_expired()
            assert buffer.outbox.dedup_bytes == max(0, accepted - PURGE_CHUNK) * key_bytes
        finally:
            await buffer.close()

    asyncio.run(run())
