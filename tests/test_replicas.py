"""Several replicas sharing state in a real Redis (issue 14), each a real ``gateway run``
with a data directory of its own, against the real broker: redeliveries spread over the
replicas publish once, one rate limit holds for the cluster, a poller has one owner and
survives its owner's ``kill -9``, and Redis going away mid-load loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from devtools.localredis import LocalRedis
from tests.helpers import (
    GatewayProcess,
    base_config,
    consume,
    github_headers,
    local_api,
    write_config,
)
from tests.test_polling import Api, poller_config

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
SECRET = "replicas-gh-secret-value-1234"


@contextlib.contextmanager
def replicas(tmp_path: Path, bootstrap: str, cfg: dict[str, Any],
             n: int = 3) -> Iterator[list[GatewayProcess]]:
    """``n`` gateway processes, each with its own data directory."""
    started: list[GatewayProcess] = []
    tmp_path.mkdir(parents=True, exist_ok=True)
    try:
        for i in range(n):
            own = {**cfg, "data_dir": str(tmp_path / f"replica-{i}")}
            started.append(GatewayProcess(write_config(tmp_path / f"r{i}.yaml", own),
                                          bootstrap).start())
        yield started
    finally:
        for g in started:
            g.stop()


def config(bootstrap: str, prefix: str, redis: LocalRedis, **redis_over: Any
           ) -> dict[str, Any]:
    cfg = base_config(bootstrap, Path("unused"), f"{prefix}.{{source}}",
                      redis={"url": redis.url, "timeout_seconds": 0.5, **redis_over})
    cfg["kafka"]["dead_letter_topic"] = f"{prefix}.dlq"
    cfg["connectors"] = {"rep-gh": {"type": "github", "config": {"secret": SECRET}}}
    return cfg


async def deliver(client: httpx.AsyncClient, url: str, body: bytes, delivery: str
                  ) -> httpx.Response:
    """As a provider does: again after a 503 (its Retry-After, shortened here)."""
    while True:
        r = await client.post(f"{url}/webhooks/rep-gh", content=body,
                              headers=github_headers(body, SECRET, event="push",
                                                     delivery=delivery))
        if r.status_code != 503:
            return r
        await asyncio.sleep(0.2)


def test_copies_of_a_delivery_spread_over_three_replicas_are_published_once(
        kafka_bootstrap: str, tmp_path: Path, topic_prefix: str,
        redis_server: LocalRedis) -> None:
    cfg = config(kafka_bootstrap, topic_prefix, redis_server)
    with replicas(tmp_path, kafka_bootstrap, cfg) as gateways:
        deliveries = [(orjson.dumps({"ref": "refs/heads/main", "n": i}), str(uuid.uuid4()))
                      for i in range(100)]
        copies = [(g.url, body, d) for body, d in deliveries for g in
                  random.choices(gateways, k=8)]
        random.shuffle(copies)

        async def send_all() -> list[httpx.Response]:
            limit = asyncio.Semaphore(32)
            async with httpx.AsyncClient(timeout=30) as client:
                async def one(url: str, body: bytes, d: str) -> httpx.Response:
                    async with limit:
                        return await deliver(client, url, body, d)
                return await asyncio.gather(*(one(*c) for c in copies))

        answers = asyncio.run(send_all())
        statuses = sorted({r.status_code for r in answers})
        assert statuses == [200, 202], statuses
        assert sum(r.status_code == 202 for r in answers) == 100  # one accept each
        ids = [orjson.loads(r.value)["id"] for r in consume(
            kafka_bootstrap, f"{topic_prefix}.github", expect=100, timeout=60, settle=3)]
        assert len(ids) == 100
        assert len(set(ids)) == 100


def test_one_rate_limit_holds_for_the_whole_cluster(
        kafka_bootstrap: str, tmp_path: Path, topic_prefix: str,
        redis_server: LocalRedis) -> None:
    cfg = config(kafka_bootstrap, topic_prefix, redis_server)
    cfg["connectors"]["rep-gh"]["config"]["rate_limit"] = {"per_second": 10, "burst": 10}
    seconds = 4.0
    with replicas(tmp_path, kafka_bootstrap, cfg) as gateways:
        async def hammer() -> list[int]:
            statuses: list[int] = []
            async with httpx.AsyncClient(timeout=30) as client:
                end = time.monotonic() + seconds
                async def worker(g: GatewayProcess) -> None:
                    while time.monotonic() < end:
                        body = orjson.dumps({"ref": uuid.uuid4().hex})
                        r = await client.post(f"{g.url}/webhooks/rep-gh", content=body,
                                              headers=github_headers(body, SECRET,
                                                                     event="push"))
                        statuses.append(r.status_code)
                await asyncio.gather(*(worker(g) for g in gateways for _ in range(3)))
            return statuses

        statuses = asyncio.run(hammer())
    accepted = statuses.count(202)
    allowed = 10 + 10 * seconds  # the burst, then 10/s: for the cluster
    assert statuses.count(429) > accepted  # it was pushed well past the limit
    assert 0.7 * allowed <= accepted <= 1.25 * allowed, (accepted, allowed)  # not 3x


def test_a_poller_has_one_owner_and_another_takes_over_after_kill_9(
        kafka_bootstrap: str, tmp_path: Path, topic_prefix: str,
        redis_server: LocalRedis) -> None:
    api = Api()
    api.add(9, at=1)
    topic = f"{topic_prefix}.polled"
    with local_api(api.app()) as url:
        api.url = url
        cfg = config(kafka_bootstrap, topic_prefix, redis_server, lease_seconds=3)
        cfg["connectors"] = {"rep-poll": poller_config(api, topic)}
        with replicas(tmp_path, kafka_bootstrap, cfg) as gateways:
            consume(kafka_bootstrap, topic, expect=9, timeout=40, settle=0)

            def owners() -> list[GatewayProcess]:
                """Those whose health says they hold the lease (reported every 2 s)."""
                deadline = time.monotonic() + 6
                while True:
                    found = [g for g in gateways if g.proc and g.proc.poll() is None
                             and httpx.get(f"{g.url}/readyz").json()["pollers"].get(
                                 "rep-poll", {}).get("lease") == "held here"]
                    if len(found) == 1 or time.monotonic() > deadline:
                        return found
                    time.sleep(0.2)

            [owner] = owners()  # one, and only one
            owner.kill()
            killed_at = time.monotonic()
            api.add(6, at=2)
            ids = [orjson.loads(r.value)["payload"]["id"]
                   for r in consume(kafka_bootstrap, topic, expect=15, timeout=40, settle=0)]
            took_over = time.monotonic() - killed_at
            assert sorted(set(ids)) == sorted(i["id"] for i in api.items)  # no skip
            [successor] = owners()
            assert successor is not owner
            assert took_over < 3 + 5  # the lease's TTL, a renewal and a poll
            owner.start()  # its volume back: what it held is published, never twice
            ids = [orjson.loads(r.value)["payload"]["id"]
                   for r in consume(kafka_bootstrap, topic, expect=16, timeout=8, settle=0)]
            assert len(ids) == 15, sorted(ids)  # no double


def test_redis_stopped_mid_load_loses_nothing(
        kafka_bootstrap: str, tmp_path: Path, topic_prefix: str,
        redis_server: LocalRedis) -> None:
    """``on_redis_down: accept`` (the default): deliveries go on with each replica's own
    deduplication while Redis is away; every 2xx reaches Kafka. ``reject``: 503 with
    Retry-After, and the replica is not ready."""
    cfg = config(kafka_bootstrap, topic_prefix, redis_server)
    with replicas(tmp_path, kafka_bootstrap, cfg, n=2) as gateways:
        accepted: list[str] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(timeout=30) as client:
                while not stop.is_set():
                    for g in gateways:
                        body = orjson.dumps({"ref": uuid.uuid4().hex})
                        r = client.post(f"{g.url}/webhooks/rep-gh", content=body,
                                        headers=github_headers(body, SECRET, event="push"))
                        assert r.status_code == 202, r.text
                        accepted.extend(r.json()["event_ids"])

        sender = threading.Thread(target=load)
        sender.start()
        try:
            time.sleep(1)
            redis_server.stop()
            deadline = time.monotonic() + 10
            while httpx.get(f"{gateways[0].url}/readyz").json()["redis"]["ok"]:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            ready = httpx.get(f"{gateways[0].url}/readyz")
            assert ready.status_code == 200  # accept: still taking deliveries
            assert "gateway_redis_up 0.0" in httpx.get(f"{gateways[0].url}/metrics").text
            during = len(accepted)
            time.sleep(2)
            assert len(accepted) > during  # taken while Redis is away
            redis_server.start()
            time.sleep(2)
        finally:
            stop.set()
            sender.join(30)
        assert httpx.get(f"{gateways[0].url}/readyz").json()["redis"]["ok"]
        ids = {orjson.loads(r.value)["id"] for r in consume(
            kafka_bootstrap, f"{topic_prefix}.github", expect=len(accepted), timeout=60)}
        assert ids == set(accepted)

    cfg = config(kafka_bootstrap, f"{topic_prefix}r", redis_server, on_redis_down="reject")
    with replicas(tmp_path / "reject", kafka_bootstrap, cfg, n=1) as [gateway]:
        redis_server.stop()
        body = b'{"ref": "refused"}'
        r = httpx.post(f"{gateway.url}/webhooks/rep-gh", content=body,
                       headers=github_headers(body, SECRET, event="push"))
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert r.json()["error"] == "shared_state_down"
        assert httpx.get(f"{gateway.url}/readyz").status_code == 503
