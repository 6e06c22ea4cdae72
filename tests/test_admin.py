"""Operating it (issue 15): the delivery store and the admin API on a listener of its own,
against a real broker: find a delivery and where its event went, replay it, redrive a
dead letter after fixing the connector, pause a connector, reload the configuration."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from devtools.localkafka import free_port
from tests.helpers import base_config, consume, github_headers, thread_server, write_config

pytestmark = pytest.mark.kafka
TOKEN = "admin-token-3f2e1d0c9b8a"
SECRET = "admin-gh-secret-value-42"


def wait_for(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_find_replay_redrive_pause_and_reload(
        kafka_bootstrap: str, tmp_path: Path, topic_prefix: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    port = free_port()
    cfg = base_config(kafka_bootstrap, tmp_path / "data", f"{topic_prefix}.{{source}}",
                      admin={"port": port, "token": TOKEN})
    cfg["kafka"]["dead_letter_topic"] = f"{topic_prefix}.dlq"
    cfg["connectors"] = {"gh": {"type": "github", "config": {"secret": SECRET},
                                "acl": {"event_types": ["push"]}}}
    path = write_config(tmp_path / "g.yaml", cfg)
    admin = f"http://127.0.0.1:{port}/admin"
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def deliver(url: str, event: str, body: bytes, secret: str = SECRET) -> httpx.Response:
        return httpx.post(f"{url}/webhooks/gh", content=body,
                          headers=github_headers(body, secret, event=event))

    with thread_server(path) as server:
        push = b'{"ref": "refs/heads/main", "n": "%s"}' % uuid.uuid4().hex.encode()
        accepted = deliver(server.url, "push", push)
        assert accepted.status_code == 202
        assert deliver(server.url, "push", push, secret="wrong").status_code == 401
        pr = b'{"action": "opened", "number": 7}'
        dead = deliver(server.url, "pull_request", pr)  # outside its ACL: a dead letter
        assert dead.json()["dead_lettered"] is True

        assert httpx.get(f"{admin}/deliveries").status_code == 401  # the token, always
        assert httpx.get(f"{server.url}/admin/deliveries", headers=auth).status_code == 404
        found = httpx.get(f"{admin}/deliveries", headers=auth,
                          params={"connector_id": "gh"}).json()["deliveries"]
        assert sorted(d["outcome"] for d in found) == ["accepted", "dead_lettered",
                                                       "rejected"]
        [rejected] = httpx.get(f"{admin}/deliveries", headers=auth, params={
            "outcome": "rejected", "reason": "invalid_signature"}).json()["deliveries"]
        assert httpx.get(f"{admin}/deliveries", headers=auth,
                         params={"q": "refs/heads/main"}).json()["deliveries"]

        # where it went: received, durable, published at an offset of its topic
        rid = accepted.headers["x-request-id"]
        event_id = accepted.json()["event_ids"][0]
        def published_detail() -> Any:
            d = httpx.get(f"{admin}/deliveries/{rid}", headers=auth).json()
            return d if any(s["step"] == "published" for s in d["journey"]) else None

        detail = wait_for(published_detail)
        assert [s["step"] for s in detail["journey"]] == ["received", "durable", "published"]
        published = detail["journey"][2]
        assert (published["event_id"], published["topic"]) == (event_id,
                                                                f"{topic_prefix}.github")
        assert detail["headers"]["x-hub-signature-256"] == "[redacted]"
        assert orjson.loads(detail["body"]) == orjson.loads(push)

        # replay: the same event again, with the same id; a rejected one never
        replayed = httpx.post(f"{admin}/replay", headers=auth, json={
            "request_ids": [rid, rejected["request_id"]]}).json()
        assert replayed["replayed"] == [{"request_id": rid, "event_ids": [event_id]}]
        assert replayed["skipped"][0]["request_id"] == rejected["request_id"]
        records = consume(kafka_bootstrap, f"{topic_prefix}.github", expect=2)
        assert [orjson.loads(r.value)["id"] for r in records] == [event_id, event_id]

        # fix the connector (its ACL), add another; reload; redrive the dead letter
        cfg["connectors"]["gh"]["acl"] = {"event_types": ["push", "pull_request*"]}
        cfg["connectors"]["later"] = {"type": "github", "config": {"secret": SECRET}}
        path.write_text(yaml.safe_dump(cfg))
        assert httpx.post(f"{admin}/reload", headers=auth).json() == {
            "reloaded": ["gh", "later"]}
        body = b'{"ref": "added"}'
        assert httpx.post(f"{server.url}/webhooks/later", content=body, headers=github_headers(
            body, SECRET, event="push")).status_code == 202  # added without a restart
        redriven = httpx.post(f"{admin}/dlq/redrive", headers=auth,
                              json={"filter": {"connector_id": "gh"}}).json()
        assert [r["request_id"] for r in redriven["replayed"]] == [
            dead.headers["x-request-id"]]
        types = [orjson.loads(r.value)["type"]
                 for r in consume(kafka_bootstrap, f"{topic_prefix}.github", expect=3)]
        assert "pull_request.opened" in types

        # paused: 503 with Retry-After (the provider retries), then taken again
        assert httpx.post(f"{admin}/connectors/gh/pause", headers=auth).json() == {
            "paused": ["gh"]}
        def refused() -> httpx.Response | None:
            r = deliver(server.url, "push", b'{"p": 1}')
            return r if r.status_code == 503 else None

        paused = wait_for(refused, timeout=5)
        assert paused.headers["retry-after"] == "30"
        assert paused.json()["error"] == "paused"
        httpx.post(f"{admin}/connectors/gh/resume", headers=auth)
        assert wait_for(lambda: deliver(server.url, "push", b'{"p": 2}').status_code == 202,
                        timeout=5)
        lines = server.wait_audit(lambda line: line["outcome"] == "replayed", count=2)
        assert sorted(line["reason"] or "-" for line in lines) == ["-", "redrive"]

        del cfg["connectors"]["later"]  # removed: its URL answers 404 from then on
        path.write_text(yaml.safe_dump(cfg))
        assert httpx.post(f"{admin}/reload", headers=auth).json() == {"reloaded": ["later"]}
        assert httpx.post(f"{server.url}/webhooks/later", content=body, headers=github_headers(
            body, SECRET, event="push")).status_code == 404

        # the same from the command line
        capsys.readouterr()
        assert main(["deliveries", "search", "--config", str(path), "--outcome", "rejected",
                     "--since", "1h"]) == 0
        assert f"{rejected['request_id']}  gh  rejected invalid_signature" in \
            capsys.readouterr().out
        assert main(["replay", rid, "--config", str(path)]) == 0
        assert f"replayed {rid}: {event_id}" in capsys.readouterr().out
        assert main(["connectors", "pause", "gh", "--config", str(path)]) == 0
        assert main(["connectors", "resume", "gh", "--config", str(path)]) == 0
        assert main(["reload", "--config", str(path)]) == 0
        assert "paused: none" in capsys.readouterr().out


def test_sighup_reloads_gateway_run_without_a_restart(kafka_bootstrap: str, tmp_path: Path,
                                                      topic_prefix: str) -> None:
    import os
    import signal

    from tests.helpers import GatewayProcess

    cfg = base_config(kafka_bootstrap, tmp_path / "data", f"{topic_prefix}.{{source}}")
    cfg["connectors"] = {"gh": {"type": "github", "config": {"secret": SECRET}}}
    path = write_config(tmp_path / "g.yaml", cfg)
    gateway = GatewayProcess(path, kafka_bootstrap).start()
    try:
        def deliver(secret: str) -> int:
            body = b'{"ref": "%s"}' % uuid.uuid4().hex.encode()
            return httpx.post(f"{gateway.url}/webhooks/gh", content=body,
                              headers=github_headers(body, secret, event="push")).status_code

        assert deliver(SECRET) == 202
        cfg["connectors"]["gh"]["config"]["secret"] = SECRET + "-rotated"
        path.write_text(yaml.safe_dump(cfg))
        assert gateway.proc is not None
        pid = gateway.proc.pid
        os.kill(pid, signal.SIGHUP)
        assert wait_for(lambda: deliver(SECRET + "-rotated") == 202, timeout=15)
        assert deliver(SECRET) == 401
        assert gateway.proc.poll() is None  # the same process: no restart
        assert gateway.proc.pid == pid
    finally:
        gateway.stop()


def test_the_store_keeps_deliveries_for_their_retention_and_within_its_size(
        tmp_path: Path) -> None:
    import asyncio

    from gateway.deliveries import DeliveryStore, RetentionConfig

    async def scenario() -> tuple[int, list[str], int, int]:
        store = DeliveryStore(tmp_path / "deliveries.db",
                              RetentionConfig(days=7, max_bytes=1 << 20),
                              {"payments": 1.0})
        await store.open()
        try:
            for i in range(3):
                store.record(f"r{i}", "accepted", ["payments", "crm", "crm"][i], None, [],
                             "POST", "/webhooks/x", {}, b"{}")
            await store.flush()
            day = 86400.0
            kept_now = await store._run(store.prune, time.time() + 2 * day)  # payments: 1 d
            left = sorted(d.request_id for d in await store.search())
            for i in range(400):  # ~4 MB of bodies: past max_bytes
                store.record(f"big{i}", "accepted", "crm", None, [], "POST", "/", {},
                             b"x" * 10_000)
            await store.flush()
            removed = await store._run(store.prune, time.time())
            return kept_now, left, removed, store._bytes()
        finally:
            await store.close()

    expired, left, removed, size = asyncio.run(scenario())
    assert expired == 1  # the payments delivery, past its connector's one day
    assert left == ["r1", "r2"]
    assert removed > 0
    assert size <= 1 << 20


def test_a_connectors_own_secret_header_is_redacted_in_the_store(
        kafka_bootstrap: str, tmp_path: Path, topic_prefix: str) -> None:
    """A header the connector's configuration names as secret (an ingress api_key) is
    redacted in the delivery store as in dead letters, whatever its name."""
    port = free_port()
    cfg = base_config(kafka_bootstrap, tmp_path / "data", f"{topic_prefix}.{{source}}",
                      admin={"port": port, "token": TOKEN})
    cfg["connectors"] = {"gh": {"type": "github", "config": {
        "secret": SECRET, "api_key": {"header": "X-Partner-Pass", "value": "pp-5e6f7a8b9c"}}}}
    with thread_server(write_config(tmp_path / "g.yaml", cfg)) as server:
        body = b'{"ref": "main"}'
        r = httpx.post(f"{server.url}/webhooks/gh", content=body, headers={
            **github_headers(body, SECRET, event="push"), "X-Partner-Pass": "pp-5e6f7a8b9c"})
        assert r.status_code == 202, r.text
        detail = httpx.get(f"http://127.0.0.1:{port}/admin/deliveries/"
                           f"{r.headers['x-request-id']}",
                           headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert detail["headers"]["x-partner-pass"] == "[redacted]"
    assert b"pp-5e6f7a8b9c" not in b"".join(
        p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file())


def test_dead_letters_are_redriven_from_the_topic_when_the_store_has_none(
        kafka_bootstrap: str, tmp_path: Path, topic_prefix: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The way back for dead letters the delivery store no longer holds: read from the
    dead-letter topic over a time range, normalized again, published when they now
    pass; with the same event id as the dead letter's."""
    from gateway.cli import main

    port = free_port()
    cfg = base_config(kafka_bootstrap, tmp_path / "first", f"{topic_prefix}.{{source}}",
                      admin={"port": port, "token": TOKEN})
    cfg["kafka"]["dead_letter_topic"] = f"{topic_prefix}.dlq"
    cfg["connectors"] = {"dlq-gh": {"type": "github", "config": {"secret": SECRET},
                                    "acl": {"event_types": ["push"]}}}
    path = write_config(tmp_path / "g.yaml", cfg)
    body = b'{"action": "opened", "number": 12}'
    started = time.time()
    with thread_server(path) as server:
        dead = httpx.post(f"{server.url}/webhooks/dlq-gh", content=body,
                          headers=github_headers(body, SECRET, event="pull_request"))
        assert dead.json()["dead_lettered"] is True
        [letter] = consume(kafka_bootstrap, f"{topic_prefix}.dlq", expect=1)

    # another machine (a fresh store), the connector fixed
    cfg["data_dir"] = str(tmp_path / "second")
    cfg["connectors"]["dlq-gh"]["acl"] = {"event_types": ["push", "pull_request*"]}
    write_config(path, cfg)
    admin = f"http://127.0.0.1:{port}/admin"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with thread_server(path):
        from_store = httpx.post(f"{admin}/dlq/redrive", headers=auth,
                                json={"filter": {"connector_id": "dlq-gh"}}).json()
        assert from_store["replayed"] == []  # this store never saw it
        later = httpx.post(f"{admin}/dlq/redrive", headers=auth, json={
            "from_topic": True, "filter": {"since": time.time() + 60}}).json()
        assert (later["read"], later["replayed"]) == (0, [])  # outside the range
        capsys.readouterr()
        assert main(["dlq", "redrive", "--from-topic", "--since", str(started - 1),
                     "--connector", "dlq-gh", "--config", str(path)]) == 0
        out = capsys.readouterr()
        assert f"replayed {dead.headers['x-request-id']}:" in out.out, out.err
        [event] = consume(kafka_bootstrap, f"{topic_prefix}.github", expect=1)
        assert orjson.loads(event.value)["type"] == "pull_request.opened"
        assert orjson.loads(event.value)["id"] == orjson.loads(letter.value)["id"]
        with pytest.raises(SystemExit, match="--from-topic needs --since"):
            main(["dlq", "redrive", "--from-topic", "--config", str(path)])
