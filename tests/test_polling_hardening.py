"""Pollers under hostile or broken sources, against real local HTTP APIs and real Kafka.

Credentials go only to the origin a poller was configured for: a next link or a redirect
to another scheme, host or port is refused, or followed bare when ``allowed_origins``
names it. A record that cannot be encoded is dead-lettered and the cursor moves past it.
No exception ends a poller: it is shown as ``last_error``, backed off and retried.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from structlog.testing import capture_logs

from connectors.errors import PollError
from connectors.options import ConnectorConfig
from connectors.polling import (
    HttpPollConnector,
    Origin,
    Page,
    Polled,
    PollHttp,
    PollingConnector,
    PollSchedule,
)
from connectors.request import event_id
from devtools.localkafka import free_port
from gateway.audit import AuditLog
from gateway.buffer import Buffer
from gateway.config import BufferConfig, GatewayConfig
from gateway.polling import PollRunner
from tests.helpers import base_config, consume, thread_server, write_config

Handler = Callable[[Request], Response]


@dataclass
class Seen:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Site:
    """A real HTTP server on its own port: it answers from ``routes`` and records every
    request it receives, headers and body included."""

    url: str = ""
    routes: dict[str, Handler] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def app(self) -> Starlette:
        async def any_path(request: Request) -> Response:
            self.seen.append(Seen(request.method, str(request.url),
                                  {k.lower(): v for k, v in request.headers.items()},
                                  await request.body()))
            handler = self.routes.get(request.url.path)
            return handler(request) if handler else Response(status_code=404)

        return Starlette(routes=[Route("/{path:path}", any_path, methods=["GET", "POST"])])

    def hits(self, path: str) -> list[Seen]:
        return [s for s in self.seen if httpx.URL(s.url).path == path]


@pytest.fixture
def sites() -> Iterator[Callable[[], Site]]:
    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start() -> Site:
        site = Site()
        port = free_port()
        site.url = f"http://127.0.0.1:{port}"
        server = uvicorn.Server(uvicorn.Config(site.app(), host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        started.append((server, thread))
        return site

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(10)


class _Audit:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def record(self, outcome: str, **fields: Any) -> None:
        self.lines.append({"outcome": outcome, **fields})


def http_poll(cid: str, **config: Any) -> HttpPollConnector:
    return HttpPollConnector(cid, HttpPollConnector.Config.model_validate(
        {"interval_seconds": 60, "max_retries": 0, **config}))


async def _with_runner(tmp_path: Path, connector: PollingConnector[Any],
                       body: Callable[[PollRunner, PollHttp], Awaitable[Any]]) -> Any:
    buffer = Buffer(tmp_path / f"{connector.connector_id}-{uuid.uuid4().hex[:6]}.db",
                    BufferConfig())
    await buffer.open()
    try:
        runner = PollRunner(GatewayConfig(), {connector.connector_id: connector}, buffer,
                            cast(AuditLog, _Audit()))
        async with httpx.AsyncClient() as client:
            return await body(runner, PollHttp(client, requests_per_second=None,
                                               max_retries=0))
    finally:
        await buffer.close()


def run_once(tmp_path: Path, connector: PollingConnector[Any]) -> int | Exception:
    """One ``run_once`` of ``connector``: how many events were new, or what it raised."""

    async def body(runner: PollRunner, http: PollHttp) -> int | Exception:
        try:
            return await runner.run_once(connector.connector_id, connector, http)
        except Exception as exc:
            return exc

    result: int | Exception = asyncio.run(_with_runner(tmp_path, connector, body))
    return result


def run_loop_until(tmp_path: Path, connector: PollingConnector[Any],
                   done: Callable[[dict[str, Any]], bool], timeout: float = 10.0
                   ) -> dict[str, Any]:
    """The runner's own loops (``start``: its own httpx client) until ``done(health)``
    or ``timeout``; returns the poller's health."""

    async def body(runner: PollRunner, http: PollHttp) -> dict[str, Any]:
        runner.start()
        try:
            deadline = time.monotonic() + timeout
            health = runner.view()[connector.connector_id]
            while not done(health) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                health = runner.view()[connector.connector_id]
            return health
        finally:
            await runner.stop()

    result: dict[str, Any] = asyncio.run(_with_runner(tmp_path, connector, body))
    return result


# -- (a) next links -----------------------------------------------------------------------

def test_next_link_to_another_origin_is_refused_or_followed_bare(
        sites: Callable[[], Site], tmp_path: Path) -> None:
    home, other = sites(), sites()
    home.routes["/items"] = lambda r: JSONResponse(
        {"data": [{"id": "a"}]}, headers={"Link": f'<{other.url}/more?page=2>; rel="next"'})
    other.routes["/more"] = lambda r: JSONResponse({"data": [{"id": "b"}]})
    config = {"url": f"{home.url}/items", "records": "/data", "pagination": {"style": "link"},
              "headers": {"X-Custom": "c0nf"}, "auth": {"type": "bearer", "token": "t0k"}}

    refused = run_once(tmp_path, http_poll("refused", **config))
    assert other.seen == [], "a next link on another port received the poller's requests"
    assert isinstance(refused, PollError), refused
    assert other.url in str(refused)
    assert "allowed_origins" in str(refused)

    followed = run_once(tmp_path, http_poll("allowed", **config,
                                            allowed_origins=[other.url]))
    assert followed == 2
    assert len(other.seen) == 1
    assert "authorization" not in other.seen[0].headers
    assert "x-custom" not in other.seen[0].headers
    assert all(s.headers.get("authorization") == "Bearer t0k"
               and s.headers.get("x-custom") == "c0nf" for s in home.seen)


def test_relative_next_link_stays_home_with_credentials(
        sites: Callable[[], Site], tmp_path: Path) -> None:
    home = sites()
    home.routes["/items"] = lambda r: JSONResponse(
        {"data": [{"id": "a"}]}, headers={"Link": '</more?page=2>; rel="next"'})
    home.routes["/more"] = lambda r: JSONResponse({"data": [{"id": "b"}]})
    c = http_poll("relative", url=f"{home.url}/items", records="/data",
                  pagination={"style": "link"}, auth={"type": "bearer", "token": "t0k"})
    assert run_once(tmp_path, c) == 2
    assert [s.headers.get("authorization") for s in home.seen] == ["Bearer t0k"] * 2


def test_allowed_origins_must_be_origins() -> None:
    for bad in ("ftp://cdn.example.com", "https://cdn.example.com/path", "cdn.example.com",
                "https://user@cdn.example.com"):
        with pytest.raises(ValueError, match="allowed_origins"):
            HttpPollConnector.Config.model_validate(
                {"url": "https://api.example.com/x", "interval_seconds": 1,
                 "allowed_origins": [bad]})


# -- (b) redirects --------------------------------------------------------------------------

def test_redirect_to_another_port_is_refused_or_followed_without_the_api_key(
        sites: Callable[[], Site], tmp_path: Path) -> None:
    home, other = sites(), sites()
    home.routes["/items"] = lambda r: Response(
        status_code=302, headers={"Location": f"{other.url}/mirror"})
    other.routes["/mirror"] = lambda r: JSONResponse({"data": [{"id": "m1"}, {"id": "m2"}]})
    config = {"url": f"{home.url}/items", "records": "/data",
              "headers": {"X-Api-Key": "k3y"}, "interval_seconds": 0.2}

    health = run_loop_until(tmp_path, http_poll("redir", **config),
                            lambda h: h["last_error"] is not None, timeout=5)
    assert other.seen == [], "a redirect took the poller's requests to another port"
    assert other.url in health["last_error"]
    assert "allowed_origins" in health["last_error"]
    assert health["events_polled"] == 0

    health = run_loop_until(tmp_path, http_poll("redir-ok", **config,
                                                allowed_origins=[other.url]),
                            lambda h: h["events_polled"] == 2, timeout=5)
    assert health["events_polled"] == 2
    assert health["last_error"] is None
    assert other.seen
    assert all("x-api-key" not in s.headers for s in other.seen)
    assert all(s.headers.get("x-api-key") == "k3y" for s in home.seen)


def test_redirect_methods_hops_and_same_origin(sites: Callable[[], Site]) -> None:
    home, other = sites(), sites()
    home.routes["/post"] = lambda r: Response(status_code=302, headers={"Location": "/got"})
    home.routes["/see"] = lambda r: Response(status_code=303,
                                             headers={"Location": f"{other.url}/got"})
    home.routes["/keep"] = lambda r: Response(status_code=307, headers={"Location": "/got"})
    home.routes["/loop"] = lambda r: Response(status_code=302, headers={"Location": "/loop"})
    home.routes["/got"] = lambda r: JSONResponse({"ok": True})
    other.routes["/got"] = lambda r: JSONResponse({"ok": True})
    allowed = frozenset({Origin.of(other.url)})

    async def scenario() -> None:
        async with httpx.AsyncClient() as client:
            http = PollHttp(client, requests_per_second=None, max_retries=0)
            home_url = Origin.of(home.url)
            creds: dict[str, Any] = {"headers": {"X-Api-Key": "k3y"}, "data": {"s": "x"}}
            # 302 after POST becomes a GET without the body; same origin keeps the key
            r = await http.request("POST", f"{home.url}/post", home=home_url, **creds)
            assert r.status_code == 200
            got = home.hits("/got")[-1]
            assert (got.method, got.body, got.headers.get("x-api-key")) == ("GET", b"", "k3y")
            # 307 keeps method and body at home
            await http.request("POST", f"{home.url}/keep", home=home_url, **creds)
            got = home.hits("/got")[-1]
            assert (got.method, got.body) == ("POST", b"s=x")
            # 303 to an allowed origin: GET, bare
            await http.request("POST", f"{home.url}/see", home=home_url,
                               allowed=allowed, **creds)
            bare = other.hits("/got")[-1]
            assert (bare.method, bare.body) == ("GET", b"")
            assert "x-api-key" not in bare.headers
            with pytest.raises(PollError, match="redirects"):
                await http.request("GET", f"{home.url}/loop", home=home_url)
            assert len(home.hits("/loop")) == 6  # the request and 5 hops
            with pytest.raises(PollError, match="allowed_origins"):
                await http.request("GET", f"{home.url}/see", home=home_url)

    asyncio.run(scenario())


# -- (c) records that cannot be encoded -------------------------------------------------------

def nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": True}
    for _ in range(depth - 1):
        node = {"n": node}
    return node


@pytest.mark.kafka
def test_unencodable_records_are_dead_lettered_and_the_cursor_moves_on(
        sites: Callable[[], Site], kafka_bootstrap: str, data_dir: Path,
        tmp_path: Path) -> None:
    run = f"ph{uuid.uuid4().hex[:10]}"
    topic, dlq = f"{run}.events", f"{run}.dlq"
    rows: list[dict[str, Any]] = [{"id": "good-1", "at": "2026-01-01T00:00:01Z", "n": 1},
            {"id": "big", "at": "2026-01-01T00:00:02Z", "n": 2**70},
            {"id": "deep", "at": "2026-01-01T00:00:03Z", "n": nested(300)},
            {"id": "good-2", "at": "2026-01-01T00:00:04Z", "n": 2}]
    source = sites()

    def items(request: Request) -> Response:
        since = request.query_params.get("since")
        return JSONResponse({"data": [r for r in rows if since is None or r["at"] >= since]})

    source.routes["/items"] = items
    cfg = base_config(kafka_bootstrap, data_dir, f"{run}.{{source}}")
    assert cfg["kafka"]["dead_letter_topic"] == dlq
    cfg["connectors"] = {"hard": {"type": "http_poll", "config": {
        "url": f"{source.url}/items", "records": "/data", "timestamp_field": "/at",
        "incremental": {"field": "/at", "param": "since"}, "interval_seconds": 0.3,
        "source": "items", "topic": topic, "max_retries": 0}}}
    with thread_server(write_config(tmp_path / "g.yaml", cfg)) as server:
        published = consume(kafka_bootstrap, topic, expect=2, timeout=30)
        dead = consume(kafka_bootstrap, dlq, expect=2, timeout=30)
        deadline = time.monotonic() + 10  # several more polls
        while len(source.seen) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        server.wait_audit(lambda line: line["outcome"] == "dead_lettered", count=2)
        time.sleep(1.0)
        lines = [line for line in server.audit_lines if line["outcome"] == "dead_lettered"]
    assert sorted(orjson.loads(r.value)["payload"]["id"] for r in published) == [
        "good-1", "good-2"]
    letters = {orjson.loads(r.value)["id"]: orjson.loads(r.value) for r in dead}
    assert set(letters) == {event_id("hard", "big"), event_id("hard", "deep")}
    for rid in ("big", "deep"):
        letter = letters[event_id("hard", rid)]
        assert letter["connector_id"] == "hard"
        assert letter["source"] == "items"
        assert "cannot be encoded" in letter["reason"]
        assert letter["request_id"] is None
        assert letter["body_base64"] is None
        assert letter["received_at"].endswith("Z")
        assert json.loads(letter["body"]) == next(r for r in rows if r["id"] == rid)
    assert all(dict(r.headers)["event-id"].decode() == orjson.loads(r.value)["id"]
               for r in dead)
    # each dead-lettered once, with its reason, though the poller went on polling
    assert sorted(i for line in lines for i in line["event_ids"]) == sorted(letters)
    assert all("cannot be encoded" in line["reason"] for line in lines)
    later = [httpx.URL(s.url).params.get("since") for s in source.seen[1:]]
    assert later
    assert all(since == "2026-01-01T00:00:04Z" for since in later)
    assert len(source.seen) >= 3


def test_unencodable_cursor_value_is_saved_as_text(sites: Callable[[], Site],
                                                   tmp_path: Path) -> None:
    """The incremental field itself is a 70-bit integer: the record is dead-lettered and
    the cursor still moves (saved as its decimal text). Numbers compare as numbers."""
    source = sites()
    rows: list[dict[str, Any]] = [{"id": "x", "seq": 9}, {"id": "w", "seq": 10},
                                  {"id": "y", "seq": 2**70}]
    source.routes["/items"] = lambda r: JSONResponse(rows)
    c = http_poll("seq", url=f"{source.url}/items",
                  incremental={"field": "/seq", "param": "after"})

    async def body(runner: PollRunner, http: PollHttp) -> tuple[int, int, bytes | None]:
        first = await runner.run_once("seq", c, http)
        second = await runner.run_once("seq", c, http)
        return first, second, await runner.buffer.cursors.load("seq")

    first, second, cursor = asyncio.run(_with_runner(tmp_path, c, body))
    assert (first, second) == (2, 0)  # two events and a dead letter, then nothing new
    assert cursor is not None
    assert orjson.loads(cursor)["since"] == str(2**70)
    assert httpx.URL(source.seen[-1].url).params["after"] == str(2**70)


# -- (d) no exception ends a poller -------------------------------------------------------

@pytest.mark.kafka
def test_a_source_answering_garbage_does_not_stop_its_poller(
        sites: Callable[[], Site], kafka_bootstrap: str, data_dir: Path,
        tmp_path: Path) -> None:
    run = f"pg{uuid.uuid4().hex[:10]}"
    source = sites()
    deep = b"[" * 100_000 + b"]" * 100_000  # json.loads: RecursionError
    source.routes["/items"] = lambda r: Response(deep, media_type="application/json")
    cfg = base_config(kafka_bootstrap, data_dir, f"{run}.{{source}}")
    cfg["connectors"] = {"garbage": {"type": "http_poll", "config": {
        "url": f"{source.url}/items", "interval_seconds": 0.3, "source": "g",
        "topic": f"{run}.events", "max_retries": 0}}}
    with thread_server(write_config(tmp_path / "g.yaml", cfg)) as server:
        deadline = time.monotonic() + 15
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            health = httpx.get(server.url + "/readyz").json()["pollers"].get("garbage", {})
            if health.get("last_error"):
                break
            time.sleep(0.2)
        assert health.get("last_error"), health
        assert "JSON" in health["last_error"]
        assert health["last_error_at"] is not None
        polls = len(source.seen)
        time.sleep(1.5)
        assert len(source.seen) > polls  # still polling, backed off
        source.routes["/items"] = lambda r: JSONResponse([{"id": "fine-1"}, {"id": "fine-2"}])
        got = consume(kafka_bootstrap, f"{run}.events", expect=2, timeout=30)
    assert sorted(orjson.loads(r.value)["payload"]["id"] for r in got) == ["fine-1", "fine-2"]


class _Flaky(PollingConnector[PollSchedule]):
    """Raises whatever it is told to, then polls fine."""

    source: ClassVar[str] = "flaky"
    Config: ClassVar[type[ConnectorConfig]] = PollSchedule

    def __init__(self, connector_id: str, config: PollSchedule,
                 errors: list[BaseException]) -> None:
        super().__init__(connector_id, config)
        self.errors = errors
        self.calls: list[float] = []

    async def poll(self, http: PollHttp, state: dict[str, Any]) -> Page:
        self.calls.append(time.monotonic())
        if self.errors:
            raise self.errors.pop(0)
        return Page([Polled(f"e{len(self.calls)}", "flaky.ok", {"n": len(self.calls)})],
                    {"n": len(self.calls)})


def test_any_exception_is_recorded_backed_off_and_retried(tmp_path: Path) -> None:
    errors: list[BaseException] = [RuntimeError("boom"), TypeError("bad"), KeyError("k")]
    flaky = _Flaky("flaky", PollSchedule(interval_seconds=1.5), errors)
    with capture_logs() as logs:
        health = run_loop_until(tmp_path, flaky, lambda h: h["events_polled"] >= 1,
                                timeout=15)
    assert health["events_polled"] == 1
    assert health["last_error"] == "KeyError: 'k'"
    assert health["last_error_at"] is not None
    failed = [e for e in logs if e["event"] == "poll_failed"]
    assert [e["error"] for e in failed] == ["RuntimeError: boom", "TypeError: bad",
                                            "KeyError: 'k'"]
    # from 1 s, doubling, capped by the 1.5 s schedule (uncapped: 1, 2, 4)
    assert [e["retry_in"] for e in failed] == [1.0, 1.5, 1.5]
    gaps = [b - a for a, b in zip(flaky.calls, flaky.calls[1:], strict=False)]
    assert len(gaps) == 3
    assert all(gap >= wait - 0.05 for gap, wait in zip(gaps, [1.0, 1.5, 1.5], strict=True)), gaps


def test_backoff_doubles_and_is_capped() -> None:
    slow = _Flaky("slow", PollSchedule(interval_seconds=3600), [])
    fast = _Flaky("fast", PollSchedule(interval_seconds=2), [])
    assert [PollRunner.backoff(slow, n) for n in range(1, 12)] == [
        1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert [PollRunner.backoff(fast, n) for n in range(1, 4)] == [1, 2, 2]
