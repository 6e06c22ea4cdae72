"""Records Kafka refuses for good never wedge the relay, and /readyz tells the truth:
against the real broker, with topics whose size limit refuses a record."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devtools.localkafka import free_port
from gateway.app import Gateway
from gateway.audit import AuditLog
from gateway.buffer import Buffer, Record
from gateway.config import BufferConfig
from gateway.kafka_settings import KafkaConfig
from gateway.relay import Relay
from tests.helpers import (
    GatewayProcess,
    ThreadServer,
    base_config,
    consume,
    thread_server,
    write_config,
)

pytestmark = pytest.mark.kafka

SECRET = "refusal-secret-77c1"


def small_topic(bootstrap: str, *topics: str, max_bytes: int = 4096) -> None:
    """Topics whose max.message.bytes refuses any record larger than ``max_bytes``."""
    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(t, 1, 1, topic_configs={
                "max.message.bytes": str(max_bytes)}) for t in topics])
        finally:
            await admin.close()
    asyncio.run(create())


def deliver(server: ThreadServer, cid: str, body: bytes) -> httpx.Response:
    mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return httpx.post(f"{server.url}/webhooks/{cid}", content=body, headers={
        "X-Signature": mac, "X-Delivery-Id": uuid.uuid4().hex,
        "Content-Type": "application/json"})


def config(bootstrap: str, data_dir: Path, prefix: str, **kafka: Any) -> dict[str, Any]:
    cfg = base_config(bootstrap, data_dir, f"{prefix}.{{source}}")
    cfg["kafka"].update(kafka)
    hook = {"secret": SECRET, "id_header": "X-Delivery-Id", "event_type_pointer": "/type"}
    cfg["connectors"] = {
        "big": {"type": "webhook", "config": {**hook, "topic": f"{prefix}.small"}},
        "ok": {"type": "webhook", "config": {**hook, "source": "ok"}},
    }
    return cfg


def ids_on(bootstrap: str, topic: str, expect: int, timeout: float = 30) -> Counter[str]:
    return Counter(orjson.loads(r.value)["id"]
                   for r in consume(bootstrap, topic, expect=expect, timeout=timeout,
                                    settle=3))


def test_a_record_the_broker_refuses_is_dead_lettered_and_the_rest_published_once(
        kafka_bootstrap: str, data_dir: Path, tmp_path: Path, topic_prefix: str) -> None:
    small_topic(kafka_bootstrap, f"{topic_prefix}.small")
    cfg = config(kafka_bootstrap, data_dir, topic_prefix)
    with thread_server(write_config(tmp_path / "gateway.yaml", cfg)) as server:
        big = deliver(server, "big", orjson.dumps({"type": "t.big", "pad": "x" * 8000}))
        assert big.status_code == 202, big.text
        ok = [deliver(server, "ok", orjson.dumps({"type": "t.ok", "n": n}))
              for n in range(3)]
        assert [r.status_code for r in ok] == [202, 202, 202]
        ok_ids = [r.json()["event_ids"][0] for r in ok]
        # each normal event exactly once, however often the relay retried
        assert ids_on(kafka_bootstrap, f"{topic_prefix}.ok", 3) == Counter(ok_ids)
        [letter] = consume(kafka_bootstrap, f"{topic_prefix}.dlq", expect=1, timeout=30)
        value = orjson.loads(letter.value)
        assert value["id"] == big.json()["event_ids"][0]
        assert value["reason"] == "kafka_refused: MessageSizeTooLargeError"
        assert value["topic"] == f"{topic_prefix}.small"
        assert value["event"]["payload"]["pad"] == "x" * 8000  # the whole event, kept
        lines = server.wait_audit(lambda line: line["outcome"] == "dead_lettered")
        assert [line["reason"] for line in lines] == ["kafka_refused"]
        ready = httpx.get(f"{server.url}/readyz").json()
        assert ready["buffer"]["events"] == 0


def test_refused_by_the_dead_letter_topic_too_it_is_quarantined(
        kafka_bootstrap: str, data_dir: Path, tmp_path: Path, topic_prefix: str) -> None:
    small_topic(kafka_bootstrap, f"{topic_prefix}.small", f"{topic_prefix}.dlq")
    cfg = config(kafka_bootstrap, data_dir, topic_prefix)
    path = write_config(tmp_path / "gateway.yaml", cfg)
    with thread_server(path) as server:
        big = deliver(server, "big", orjson.dumps({"type": "t.big", "pad": "y" * 8000}))
        after = deliver(server, "ok", orjson.dumps({"type": "t.ok"}))
        assert (big.status_code, after.status_code) == (202, 202)
        assert ids_on(kafka_bootstrap, f"{topic_prefix}.ok", 1) == Counter(
            after.json()["event_ids"])
        deadline = time.monotonic() + 20
        while httpx.get(f"{server.url}/readyz").json()["buffer"]["quarantined"] != 1:
            assert time.monotonic() < deadline, "never quarantined"
            time.sleep(0.2)
        assert "gateway_quarantined_events 1.0" in httpx.get(f"{server.url}/metrics").text
        listed = subprocess.run([sys.executable, "-m", "gateway", "quarantine", "--config",
                                 str(path), "--with-values"], capture_output=True, text=True,
                                check=True)
        [line] = [orjson.loads(raw) for raw in listed.stdout.splitlines()]
        assert line["event_id"] == big.json()["event_ids"][0]
        assert "MessageSizeTooLargeError" in line["reason"]
        assert "y" * 8000 in line["value"]


def test_an_illegal_topic_in_the_buffer_goes_to_the_dead_letter_topic(
        kafka_bootstrap: str, tmp_path: Path, topic_prefix: str) -> None:
    """A record whose topic Kafka can never take (written before topics were checked)."""
    def record(topic: str, n: int) -> Record:
        return Record(topic, b"k", b'{"n": %d}' % n, f"id-{n}", "c", "t", "s")

    async def run() -> None:
        buffer = Buffer(tmp_path / "buffer.db", BufferConfig())
        audit = AuditLog(tmp_path / "audit.jsonl")
        await buffer.open()
        await audit.open()
        assert await buffer.outbox.submit(None, [record("bad topic/x", 1),
                                          record(f"{topic_prefix}.good", 2)])
        relay = Relay(buffer, KafkaConfig(bootstrap_servers=kafka_bootstrap,
                                          dead_letter_topic=f"{topic_prefix}.dlq"), audit)
        relay.start()
        try:
            for _ in range(200):
                if not await buffer.outbox.fetch():
                    break
                await asyncio.sleep(0.1)
            assert not await buffer.outbox.fetch()
        finally:
            await relay.stop()
            await buffer.close()
            await audit.close()

    asyncio.run(run())
    assert [r.value for r in consume(kafka_bootstrap, f"{topic_prefix}.good", expect=1)] == [
        b'{"n": 2}']
    [letter] = consume(kafka_bootstrap, f"{topic_prefix}.dlq", expect=1)
    assert orjson.loads(letter.value)["reason"] == "kafka_refused: InvalidTopicError"


def _gateway(server: ThreadServer) -> Gateway:
    app = server.server.config.loaded_app
    assert isinstance(app, Gateway)
    return app


def test_readyz_is_not_ready_while_buffer_commits_fail(
        kafka_bootstrap: str, data_dir: Path, tmp_path: Path, topic_prefix: str) -> None:
    cfg = config(kafka_bootstrap, data_dir, topic_prefix)
    with thread_server(write_config(tmp_path / "gateway.yaml", cfg)) as server:
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        buffer = _gateway(server).state.runtime.buffer

        def cap(pages: int | None) -> None:  # SQLite's own "database or disk is full"
            def run() -> None:
                assert buffer.db.conn is not None
                count = buffer.db.conn.execute("PRAGMA page_count").fetchone()[0]
                buffer.db.conn.execute(f"PRAGMA max_page_count={pages or count}")
            assert buffer.db.loop is not None
            asyncio.run_coroutine_threadsafe(buffer.db.run(run), buffer.db.loop).result(10)

        cap(None)
        full = [deliver(server, "ok", orjson.dumps({"type": "t", "pad": "z" * 30000, "n": n}))
                for n in range(3)]
        assert {r.status_code for r in full} == {503}
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 503
        assert "buffer: commits fail" in ready.json()["reason"]
        assert "gateway_buffer_commit_failing 1.0" in httpx.get(f"{server.url}/metrics").text
        cap(1_000_000)
        assert deliver(server, "ok", orjson.dumps({"type": "t"})).status_code == 202
        assert httpx.get(f"{server.url}/readyz").status_code == 200


def test_readyz_is_not_ready_when_the_oldest_event_waits_too_long(
        data_dir: Path, tmp_path: Path, topic_prefix: str) -> None:
    nowhere = f"127.0.0.1:{free_port()}"  # no broker: events stay in the buffer
    cfg = config(nowhere, data_dir, topic_prefix)
    cfg["buffer"] = {"max_age_seconds": 1}
    with thread_server(write_config(tmp_path / "gateway.yaml", cfg)) as server:
        assert deliver(server, "ok", orjson.dumps({"type": "t"})).status_code == 202
        time.sleep(1.5)
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 503
        assert "the oldest event waits" in ready.json()["reason"]
        assert ready.json()["buffer"]["oldest_age_seconds"] >= 1
        metrics = httpx.get(f"{server.url}/metrics").text
        [age] = [line for line in metrics.splitlines()
                 if line.startswith("gateway_buffer_oldest_event_age_seconds ")]
        assert float(age.split()[1]) >= 1


def test_gateway_run_reports_the_relay_as_leader(
        kafka_bootstrap: str, data_dir: Path, tmp_path: Path, topic_prefix: str) -> None:
    cfg = config(kafka_bootstrap, data_dir, topic_prefix)
    gateway = GatewayProcess(write_config(tmp_path / "gateway.yaml", cfg), kafka_bootstrap)
    gateway.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            body = httpx.get(f"{gateway.url}/readyz").json()
            if body["relay"]["leader"] and body["ready"]:
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.3)
        assert "gateway_relay_leader 1.0" in httpx.get(f"{gateway.url}/metrics").text
    finally:
        gateway.stop()


@pytest.mark.slow
def test_a_topic_that_stays_missing_goes_to_the_dead_letter_topic_after_the_wait(
        tmp_path: Path) -> None:
    """On a broker that does not create topics: records for a missing topic wait
    ``kafka.unknown_topic_timeout_seconds``, then are dead-lettered; the rest go on."""
    from devtools.localkafka import LocalKafka

    with LocalKafka(auto_create_topics=False) as kafka:
        small_topic(kafka.bootstrap, "t.present", "t.dlq", max_bytes=1_000_000)

        def record(topic: str, n: int) -> Record:
            return Record(topic, b"k", b'{"n": %d}' % n, f"id-{n}", "c", "t", "s")

        async def run() -> float:
            buffer = Buffer(tmp_path / "buffer.db", BufferConfig())
            audit = AuditLog(tmp_path / "audit.jsonl")
            await buffer.open()
            await audit.open()
            assert await buffer.outbox.submit(None, [record("t.missing", 1),
                                                     record("t.present", 2)])
            relay = Relay(buffer, KafkaConfig(bootstrap_servers=kafka.bootstrap,
                                              dead_letter_topic="t.dlq",
                                              unknown_topic_timeout_seconds=3), audit)
            started = time.monotonic()
            relay.start()
            try:
                while await buffer.outbox.fetch():
                    assert time.monotonic() - started < 60, "the missing topic blocked it"
                    await asyncio.sleep(0.2)
                return time.monotonic() - started
            finally:
                await relay.stop()
                await buffer.close()
                await audit.close()

        took = asyncio.run(run())
        assert took >= 3  # it waited for the topic first
        assert [r.value for r in consume(kafka.bootstrap, "t.present", expect=1)] == [
            b'{"n": 2}']
        [letter] = consume(kafka.bootstrap, "t.dlq", expect=1)
        value = orjson.loads(letter.value)
        assert value["reason"] == "kafka_refused: UnknownTopicOrPartitionError"
        assert (value["topic"], value["id"]) == ("t.missing", "id-1")
