"""Pollers against a real local HTTP API (uvicorn in a thread) and a real Kafka broker.

The API pages with Link headers, changes between polls, answers 429 with Retry-After and
500 sometimes, and 304 to a matching ETag.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.polling import HttpPollConnector, PollHttp
from gateway.buffer import Buffer
from gateway.config import BufferConfig, GatewayConfig
from gateway.localkafka import free_port
from gateway.polling import PollRunner
from tests.helpers import base_config, consume, thread_server, write_config

pytestmark = pytest.mark.kafka


@dataclass
class Api:
    items: list[dict[str, Any]] = field(default_factory=list)
    hits: list[str] = field(default_factory=list)
    fail: list[int] = field(default_factory=list)  # statuses to answer first, in order
    slow_cursor: int | None = None  # a page that stalls (for the kill test)
    url: str = ""

    def add(self, n: int, at: int) -> None:
        start = len(self.items)
        self.items += [{"id": f"item-{start + i}", "updated_at": f"2026-01-01T00:{at:02d}:"
                        f"{i:02d}Z", "status": "open"} for i in range(n)]

    def app(self) -> Starlette:
        async def items(request: Request) -> Response:
            self.hits.append(str(request.url))
            if self.fail:
                status = self.fail.pop(0)
                return Response(status_code=status, headers={"Retry-After": "1"})
            since = request.query_params.get("since")
            cursor = int(request.query_params.get("cursor", "0"))
            if self.slow_cursor is not None and cursor == self.slow_cursor:
                await asyncio.sleep(5)
            rows = [i for i in self.items if since is None or i["updated_at"] >= since]
            page = rows[cursor:cursor + 3]
            headers = {}
            if cursor + 3 < len(rows):
                q = f"cursor={cursor + 3}" + (f"&since={since}" if since else "")
                headers["Link"] = f'<{self.url}/items?{q}>; rel="next"'
            return JSONResponse({"data": page}, headers=headers)

        async def etag(request: Request) -> Response:
            self.hits.append(str(request.url))
            if self.fail:
                status = self.fail.pop(0)
                return Response(status_code=status, headers={"Retry-After": "1"})
            tag = f'"v{len(self.items)}"'
            if request.headers.get("if-none-match") == tag:
                return Response(status_code=304)
            return JSONResponse(self.items, headers={"ETag": tag})

        return Starlette(routes=[Route("/items", items), Route("/etag", etag)])


@pytest.fixture
def api() -> Iterator[Api]:
    state = Api()
    port = free_port()
    state.url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(uvicorn.Config(state.app(), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield state
    server.should_exit = True
    thread.join(10)


def poller_config(api: Api, topic: str, **over: Any) -> dict[str, Any]:
    return {"type": "http_poll", "config": {
        "url": f"{api.url}/items", "records": "/data", "id_field": "/id",
        "timestamp_field": "/updated_at", "event_type": "item.{status}",
        "pagination": {"style": "link"},
        "incremental": {"field": "/updated_at", "param": "since"},
        "interval_seconds": 0.3, "source": "items", "topic": topic, "max_retries": 3, **over}}


def ids_on(kafka: str, topic: str, expect: int) -> list[str]:
    return [orjson.loads(r.value)["payload"]["id"] for r in consume(kafka, topic, expect=expect,
                                                                    timeout=40)]


def test_paged_incremental_polling_publishes_everything_once(
        api: Api, kafka_bootstrap: str, data_dir: Path, tmp_path: Path) -> None:
    topic = f"poll-{uuid.uuid4().hex[:8]}"
    api.add(8, at=1)
    cfg = base_config(kafka_bootstrap, data_dir, "unused.{source}")
    cfg["connectors"] = {"items": poller_config(api, topic)}
    with thread_server(write_config(tmp_path / "g.yaml", cfg)) as server:
        assert sorted(ids_on(kafka_bootstrap, topic, 8)) == sorted(i["id"] for i in api.items)
        api.add(4, at=2)  # the source changes between polls
        got = ids_on(kafka_bootstrap, topic, 12)
        time.sleep(1.0)  # several more polls: the >= cursor overlaps, ids dedupe it
        got = ids_on(kafka_bootstrap, topic, 12)
        assert sorted(got) == sorted(i["id"] for i in api.items)  # no skips, no doubles
        assert any("since=2026-01-01T00%3A02" in h or "since=2026-01-01T00:02" in h
                   for h in api.hits)
        ready = httpx.get(server.url + "/readyz").json()
        deadline = time.monotonic() + 10
        while not ready["pollers"] and time.monotonic() < deadline:
            time.sleep(0.5)
            ready = httpx.get(server.url + "/readyz").json()
        health = ready["pollers"]["items"]
        assert health["events_polled"] == 12 and health["last_success"] is not None
        assert health["freshness_seconds"] is not None
    envelope = orjson.loads(consume(kafka_bootstrap, topic, expect=1)[0].value)
    assert envelope["type"] == "item.open" and envelope["source"] == "items"


def test_429_500_and_304_are_handled(api: Api, tmp_path: Path) -> None:
    api.add(2, at=1)
    api.fail = [429, 500]

    async def scenario() -> None:
        buffer = Buffer(tmp_path / "b.db", BufferConfig())
        await buffer.open()
        connector = HttpPollConnector("etag", HttpPollConnector.Config.model_validate(
            {"url": f"{api.url}/etag", "interval_seconds": 60, "max_retries": 3}))
        runner = PollRunner(GatewayConfig(), {"etag": connector}, buffer, _NullAudit())
        async with httpx.AsyncClient() as client:
            http = PollHttp(client, requests_per_second=None, max_retries=3)
            started = time.monotonic()
            assert await runner.run_once("etag", connector, http) == 2
            assert time.monotonic() - started >= 1.0  # Retry-After honored
            assert await runner.run_once("etag", connector, http) == 0  # 304
            api.add(1, at=2)
            assert await runner.run_once("etag", connector, http) == 1  # changed: new tag
        await buffer.close()

    asyncio.run(scenario())
    assert len(api.hits) == 2 + 1 + 1 + 1  # 429, 500, 200, 304, 200


class _NullAudit:
    def record(self, *args: Any, **kwargs: Any) -> None:
        pass


def test_killed_between_fetch_and_publish_skips_nothing(
        api: Api, kafka_bootstrap: str, tmp_path: Path) -> None:
    """`gateway poll` is kill -9ed while a page is in flight, then restarted."""
    topic = f"pollkill-{uuid.uuid4().hex[:8]}"
    api.add(9, at=1)
    api.slow_cursor = 3  # the second page stalls
    cfg = base_config(kafka_bootstrap, tmp_path / "data", "unused.{source}")
    cfg["connectors"] = {"items": poller_config(api, topic, incremental=None)}
    path = write_config(tmp_path / "g.yaml", cfg)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "gateway", "poll", "--config", str(path)],
                                env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    proc = start()
    try:
        deadline = time.monotonic() + 30
        while not any("cursor=3" in h for h in api.hits) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert any("cursor=3" in h for h in api.hits), api.hits
        os.killpg(proc.pid, signal.SIGKILL)  # mid-fetch of page 2
        proc.wait(10)
        api.slow_cursor = None
        proc = start()
        got = ids_on(kafka_bootstrap, topic, 9)
        assert set(got) == {i["id"] for i in api.items}  # nothing skipped
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
