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
from typing import Any, cast
from urllib.parse import parse_qsl

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.polling import HttpPollConnector, PollHttp
from devtools.localkafka import free_port
from gateway.audit import AuditLog
from gateway.buffer import Buffer
from gateway.config import BufferConfig, GatewayConfig
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

    async def route_items(self, request: Request) -> Response:
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

    async def route_etag(self, request: Request) -> Response:
        self.hits.append(str(request.url))
        if self.fail:
            status = self.fail.pop(0)
            return Response(status_code=status, headers={"Retry-After": "1"})
        tag = f'"v{len(self.items)}"'
        if request.headers.get("if-none-match") == tag:
            return Response(status_code=304)
        return JSONResponse(self.items, headers={"ETag": tag})

    async def route_gh_events(self, request: Request) -> Response:
        self.hits.append(f"{request.url} auth={request.headers.get('authorization')}")
        if request.headers.get("if-none-match") == '"gh1"':
            return Response(status_code=304, headers={"X-Poll-Interval": "90"})
        page = int(request.query_params.get("page", "1"))
        body = GH_EVENTS[:2] if page == 1 else GH_EVENTS[2:]
        headers = {"ETag": '"gh1"', "X-Poll-Interval": "90"}
        if page == 1:
            headers["Link"] = f'<{self.url}/repos/o/r/events?page=2>; rel="next"'
        return JSONResponse(body, headers=headers)

    async def route_styled(self, request: Request) -> Response:
        """Cursor, page and offset pagination over 7 rows; every auth kind checked."""
        self.hits.append(f"{request.url} auth={request.headers.get('authorization')} "
                         f"key={request.headers.get('x-api-key')}")
        rows = [{"id": f"r{i}", "kind": "row"} for i in range(7)]
        q = request.query_params
        if "cursor" in q or request.url.path.endswith("/cursor"):
            at = int(q.get("cursor") or 0)
            nxt = str(at + 3) if at + 3 < 7 else None
            return JSONResponse({"rows": rows[at:at + 3], "meta": {"next": nxt}})
        if "page" in q:
            at = (int(q["page"]) - 1) * 3
            return JSONResponse({"rows": rows[at:at + 3]})
        at = int(q.get("offset", 0))
        return JSONResponse({"rows": rows[at:at + 3]})

    async def route_token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        self.hits.append(f"token {form.get('grant_type')} {form.get('client_id')}")
        return JSONResponse({"access_token": f"tok{len(self.hits)}", "expires_in": 30})

    async def route_limited(self, request: Request) -> Response:
        self.hits.append(f"limited {time.monotonic():.3f}")
        return JSONResponse([], headers={"X-RateLimit-Remaining": "0",
                                         "X-RateLimit-Reset": "1"})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/items", self.route_items),
                                 Route("/etag", self.route_etag),
                                 Route("/repos/o/r/events", self.route_gh_events),
                                 Route("/styled/{style}", self.route_styled),
                                 Route("/token", self.route_token, methods=["POST"]),
                                 Route("/limited", self.route_limited)])


GH_EVENTS = [
    {"id": "101", "type": "PullRequestEvent", "created_at": "2026-02-01T10:00:00Z",
     "payload": {"action": "opened", "number": 1}},
    {"id": "100", "type": "PushEvent", "created_at": "2026-02-01T09:00:00Z",
     "payload": {"ref": "refs/heads/main"}},
    {"id": "99", "type": "IssuesEvent", "created_at": "2026-02-01T08:00:00Z",
     "payload": {"action": "closed"}},
]


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
        assert health["events_polled"] == 12
        assert health["last_success"] is not None
        assert health["freshness_seconds"] is not None
    envelope = orjson.loads(consume(kafka_bootstrap, topic, expect=1)[0].value)
    assert envelope["type"] == "item.open"
    assert envelope["source"] == "items"


def test_429_500_and_304_are_handled(api: Api, tmp_path: Path) -> None:
    api.add(2, at=1)
    api.fail = [429, 500]

    async def scenario() -> None:
        buffer = Buffer(tmp_path / "b.db", BufferConfig())
        await buffer.open()
        connector = HttpPollConnector("etag", HttpPollConnector.Config.model_validate(
            {"url": f"{api.url}/etag", "interval_seconds": 60, "max_retries": 3}))
        runner = PollRunner(GatewayConfig(), {"etag": connector}, buffer,
                            cast(AuditLog, _NullAudit()))
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


async def _run_all(connector: Any, tmp_path: Path, runs: int = 1) -> list[int]:
    buffer = Buffer(tmp_path / f"{connector.connector_id}.db", BufferConfig())
    await buffer.open()
    runner = PollRunner(GatewayConfig(), {connector.connector_id: connector}, buffer,
                        cast(AuditLog, _NullAudit()))
    out = []
    async with httpx.AsyncClient() as client:
        http = PollHttp(client, requests_per_second=None, max_retries=1)
        for _ in range(runs):
            out.append(await runner.run_once(connector.connector_id, connector, http))
    await buffer.close()
    return out


def test_github_poll_etag_poll_interval_token_and_types(
        api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.polling import GitHubPollConnector

    monkeypatch.setenv("TEST_GH_TOKEN", "ghp_test")
    c = GitHubPollConnector("gh-poll", GitHubPollConnector.Config.model_validate(
        {"repository": "o/r", "api_url": api.url, "token_env": "TEST_GH_TOKEN",
         "interval_seconds": 1}))
    assert asyncio.run(_run_all(c, tmp_path, runs=2)) == [3, 0]  # then 304 on the ETag
    assert all("auth=Bearer ghp_test" in h for h in api.hits)
    assert any("page=2" in h for h in api.hits)
    assert c.next_delay() == 90  # X-Poll-Interval beats the configured 1 s
    page = asyncio.run(_first_page(c, api))
    assert [e.type for e in page.events] == ["pull_request.opened", "push"]


async def _first_page(c: Any, api: Api) -> Any:
    async with httpx.AsyncClient() as client:
        return await c.poll(PollHttp(client, requests_per_second=None, max_retries=0), {})


@pytest.mark.parametrize(("style", "pagination", "auth", "expect_auth"), [
    ("cursor", {"style": "cursor", "next": "/meta/next", "param": "cursor"},
     {"type": "bearer", "token": "t0k"}, "auth=Bearer t0k"),
    ("page", {"style": "page", "param": "page", "size": 3},
     {"type": "api_key", "header": "X-Api-Key", "value": "k3y"}, "key=k3y"),
    ("offset", {"style": "offset", "param": "offset", "size": 3},
     {"type": "basic", "username": "u", "password": "p"}, "auth=Basic dTpw"),
])
def test_pagination_styles_and_auth(api: Api, tmp_path: Path, style: str,
                                    pagination: dict[str, Any], auth: dict[str, Any],
                                    expect_auth: str) -> None:
    c = HttpPollConnector(f"styled-{style}", HttpPollConnector.Config.model_validate(
        {"url": f"{api.url}/styled/{style}", "records": "/rows", "pagination": pagination,
         "auth": auth, "interval_seconds": 60, "event_type": "x.{kind}"}))
    assert asyncio.run(_run_all(c, tmp_path)) == [7]
    assert all(expect_auth in h for h in api.hits)


def test_api_key_in_query_and_oauth2_token_refresh(api: Api, tmp_path: Path) -> None:
    c = HttpPollConnector("q", HttpPollConnector.Config.model_validate(
        {"url": f"{api.url}/styled/offset", "records": "/rows", "interval_seconds": 60,
         "auth": {"type": "api_key", "query": "api_key", "value": "qk"}}))
    asyncio.run(_run_all(c, tmp_path))
    assert "api_key=qk" in api.hits[-1]
    o = HttpPollConnector("o", HttpPollConnector.Config.model_validate(
        {"url": f"{api.url}/styled/offset", "records": "/rows", "interval_seconds": 60,
         "pagination": {"style": "offset", "param": "offset", "size": 3},
         "auth": {"type": "oauth2", "token_url": f"{api.url}/token", "client_id": "cid",
                  "client_secret": "cs"}}))
    asyncio.run(_run_all(o, tmp_path))
    tokens = [h for h in api.hits if h.startswith("token")]
    assert tokens == ["token client_credentials cid"]  # fetched once, reused for 3 pages
    assert all("auth=Bearer tok" in h for h in api.hits if "/styled/" in h and "offset" in h
               and "api_key" not in h)
    o.credentials.token.expires = 0  # expired: the next request refreshes it
    asyncio.run(_run_all(o, tmp_path))
    assert len([h for h in api.hits if h.startswith("token")]) == 2


def test_requests_per_second_and_rate_limit_reset(api: Api) -> None:
    async def scenario() -> tuple[float, float]:
        async with httpx.AsyncClient() as client:
            paced = PollHttp(client, requests_per_second=5, max_retries=0)
            start = time.monotonic()
            for _ in range(4):
                await paced.request("GET", f"{api.url}/styled/offset")
            spent = time.monotonic() - start
            limited = PollHttp(client, requests_per_second=None, max_retries=0)
            await limited.request("GET", f"{api.url}/limited")
            start = time.monotonic()
            await limited.request("GET", f"{api.url}/limited")  # waits for the reset
            return spent, time.monotonic() - start

    spent, waited = asyncio.run(scenario())
    assert spent >= 0.55  # 4 requests at 5/s: 3 gaps of 0.2 s
    assert waited >= 0.9


def test_cron_schedule() -> None:
    c = HttpPollConnector("cron", HttpPollConnector.Config.model_validate(
        {"url": "http://127.0.0.1:1/x", "cron": "*/5 * * * *"}))
    assert 0 <= c.next_delay() <= 300
    with pytest.raises(ValueError, match="cron"):
        HttpPollConnector.Config.model_validate({"url": "http://x", "cron": "not a cron"})
    with pytest.raises(ValueError, match="exactly one"):
        HttpPollConnector.Config.model_validate({"url": "http://x"})
