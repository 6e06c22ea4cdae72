"""The admin API, on a listener of its own (``admin: {host, port, token}``; off without a
token; never on the webhook port). Every call needs ``Authorization: Bearer <token>``.

    GET  /admin/deliveries            search: connector_id, outcome, reason, type, since,
                                      until (epoch seconds), q (text in the body), limit,
                                      before (paging: the previous page's ``next``)
    GET  /admin/deliveries/{id}       one request: its outcomes, headers (redacted), body,
                                      and its path: received, durable, published (topic,
                                      partition, offset)
    POST /admin/replay                {"request_ids": [...]} or {"filter": {...}}
    POST /admin/dlq/redrive           {"filter": {...}}: dead letters normalized again;
                                      with "from_topic": true, read back from the
                                      dead-letter topic from filter.since to .until
    POST /admin/connectors/{id}/pause and /resume: paused, a connector is answered 503
                                      with Retry-After (the provider retries: nothing lost)
    POST /admin/reload                read the configuration again (``gateway.reloading``)
    GET  /admin/overview              connectors (health, rate, outcomes, last error),
                                      pollers (freshness), buffer and Kafka: the dashboard's
    GET  /                            the dashboard (``gateway.dashboard``): a login form
                                      keeps a session cookie derived from the token

It runs where the relay runs (one process for all workers); pauses and reloads reach the
workers through the data directory (``Controls``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin_settings import AdminConfig
from gateway.certification import read_state
from gateway.config import LoadedConfig
from gateway.dashboard import Dashboard
from gateway.deliveries import PAGE, DeliveryStore
from gateway.dlq import read_dead_letters
from gateway.pipeline import Pipeline
from gateway.replay import replay

if TYPE_CHECKING:
    from gateway.relay import Relay

log = structlog.get_logger(__name__)

FILTERS = ("connector_id", "outcome", "reason", "type", "since", "until", "q", "limit",
           "before")
RATE_WINDOW = 300.0  # the overview's rates and ratios: the last five minutes
FINE = ("accepted", "duplicate", "handshake", "filtered")


class Controls:
    """Pauses and reload requests, shared by every process through files in the data
    directory: ``paused.json`` (the paused connector ids) and ``reload.request`` (its
    mtime asks for a reload). Read at most every half second."""

    def __init__(self, data_dir: Path) -> None:
        self.paused_path = data_dir / "paused.json"
        self.reload_path = data_dir / "reload.request"
        self._paused: frozenset[str] = frozenset()
        self._read_at = 0.0
        self._mtime = -1.0

    def paused(self) -> frozenset[str]:
        now = time.monotonic()
        if now - self._read_at >= 0.5:
            self._read_at = now
            try:
                st = self.paused_path.stat()
                if st.st_mtime != self._mtime:
                    self._mtime = st.st_mtime
                    self._paused = frozenset(orjson.loads(self.paused_path.read_bytes()))
            except (OSError, ValueError):
                self._paused = frozenset()
        return self._paused

    def set_paused(self, connector_id: str, paused: bool) -> frozenset[str]:
        current = set(self.paused())
        if paused:
            current.add(connector_id)
        else:
            current.discard(connector_id)
        tmp = self.paused_path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(sorted(current)))
        tmp.replace(self.paused_path)
        self._read_at = 0.0
        return frozenset(current)

    def request_reload(self) -> None:
        self.reload_path.touch()

    def reload_requested_at(self) -> float:
        try:
            return self.reload_path.stat().st_mtime
        except OSError:
            return 0.0


class AdminServer:
    """The admin app on its own uvicorn server, inside this process's event loop (it
    leaves the process's signals to the gateway's own server)."""

    def __init__(self, config: AdminConfig, app: Starlette) -> None:
        class Quiet(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        self.config = config
        self.server = Quiet(uvicorn.Config(app, host=config.host, port=config.port,
                                           log_config=None, log_level="warning",
                                           access_log=False, server_header=False))
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():  # the port is taken: say so, do not run without it
                self._task.result()
                raise OSError(f"the admin listener could not bind"
                              f" {self.config.host}:{self.config.port}")
            await asyncio.sleep(0.02)
        log.info("admin_listening", url=f"http://{self.config.host}:{self.config.port}")

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


def _json(status: int, body: Any) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def _filters(query: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in FILTERS:
        value = query.get(key)
        if value in (None, ""):
            continue
        out[key] = float(value) if key in ("since", "until", "before") else \
            int(value) if key == "limit" else str(value)
    return out


@dataclass(frozen=True)
class AdminParts:
    """What the admin API works with; ``reload`` reloads the configuration here and
    returns the ids of the connectors it swapped."""

    token: str
    loaded: LoadedConfig  # kept current by reloads
    store: DeliveryStore
    pipeline: Pipeline
    controls: Controls
    relay: Relay
    reload: Callable[[], Awaitable[list[str]]]


class AdminApi:
    """The routes (see the module)."""

    def __init__(self, parts: AdminParts) -> None:
        self.parts = parts
        self.expected = f"Bearer {parts.token}".encode()
        self.dashboard = Dashboard(parts.token)
        self.store, self.pipeline, self.controls = parts.store, parts.pipeline, parts.controls

    def app(self) -> Starlette:
        g = self.guarded
        return Starlette(routes=[
            Route("/admin/overview", g(self.overview), methods=["GET"]),
            Route("/admin/deliveries", g(self.deliveries), methods=["GET"]),
            Route("/admin/deliveries/{request_id}", g(self.delivery), methods=["GET"]),
            Route("/admin/replay", g(self.replay), methods=["POST"]),
            Route("/admin/dlq/redrive", g(self.redrive), methods=["POST"]),
            Route("/admin/connectors/{connector_id}/{action:str}", g(self.pause),
                  methods=["POST"]),
            Route("/admin/reload", g(self.reload_all), methods=["POST"]),
            *self.dashboard.routes(),
        ])

    def guarded(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            given = request.headers.get("authorization", "").encode()
            if not (hmac.compare_digest(given, self.expected)
                    or self.dashboard.signed_in(request)):
                return _json(401, {"error": "unauthorized", "detail": "admin token needed"})
            try:
                return await handler(request)  # type: ignore[no-any-return]
            except (ValueError, TypeError) as exc:
                return _json(400, {"error": "malformed", "detail": str(exc)})
        return endpoint

    async def overview(self, request: Request) -> Response:
        now, parts = time.time(), self.parts
        stats = await self.store.stats(now - RATE_WINDOW)
        state = await asyncio.to_thread(read_state, parts.loaded.settings.data_dir)
        outbox = self.pipeline.buffer.outbox
        pollers = await self.pipeline.buffer.status.read_pollers()
        paused = self.controls.paused()
        connectors = []
        for cid, entry in sorted(parts.loaded.settings.connectors.items()):
            connector = parts.loaded.connectors.get(cid)
            seen = stats.get(cid, {"outcomes": {}, "last_error": None})
            total = sum(seen["outcomes"].values())
            fine = sum(seen["outcomes"].get(o, 0) for o in FINE)
            poller = pollers.get(cid) or {}
            last_error = seen["last_error"] or ({
                "outcome": "poll_failed", "reason": poller["last_error"],
                "at": poller.get("last_error_at"), "request_id": None}
                if poller.get("last_error") else None)
            connectors.append({
                "id": cid, "type": entry.type,
                "kind": connector.kind if connector is not None else "disabled",
                "paused": cid in paused,
                "health": state.get("connectors", {}).get(cid, {}).get("health"),
                "requests_per_minute": round(total * 60 / RATE_WINDOW, 2),
                "outcomes": seen["outcomes"],
                "accepted_ratio": round(fine / total, 4) if total else None,
                "last_error": last_error})
        relay = parts.relay
        return _json(200, {
            "at": now, "window_seconds": RATE_WINDOW, "connectors": connectors,
            "pollers": pollers,
            "dead_letters": sum(s["outcomes"].get("dead_lettered", 0)
                                for s in stats.values()),
            "buffer": {"events": outbox.events, "bytes": outbox.bytes,
                       "max_bytes": parts.loaded.settings.buffer.max_bytes,
                       "oldest_age_seconds": round(outbox.oldest_age(), 1),
                       "has_room": outbox.has_room},
            "kafka": {"ok": relay.kafka_ok, "error": relay.kafka_error,
                      "refused": relay.kafka_refused, "missing_topics": relay.missing_topics,
                      "published": relay.published}})

    async def deliveries(self, request: Request) -> Response:
        filters = _filters(request.query_params)
        page = [d.summary() for d in await self.store.search(**filters)]
        full = len(page) >= (filters.get("limit") or PAGE)
        return _json(200, {"deliveries": page, "next": page[-1]["at"] if full else None})

    async def delivery(self, request: Request) -> Response:
        rows = await self.store.search(request_ids=[request.path_params["request_id"]])
        if not rows:
            return _json(404, {"error": "not_found", "detail": "no stored delivery"})
        first = min(rows, key=lambda d: d.at)
        ids = sorted({i for d in rows for i in d.event_ids})
        published = await self.store.path_of(ids)
        journey: list[dict[str, Any]] = [{"step": "received", "at": first.at}]
        if any(d.outcome in ("accepted", "dead_lettered") for d in rows):
            journey.append({"step": "durable", "at": first.at, "event_ids": ids})
        journey += [{"step": "published", "event_id": i, **published[i]}
                    for i in ids if i in published]
        try:
            body: dict[str, Any] = {"body": first.body.decode("utf-8")}
        except UnicodeDecodeError:
            body = {"body_base64": base64.b64encode(first.body).decode()}
        outcomes = [{"outcome": d.outcome, "reason": d.reason, "at": d.at,
                     "event_ids": d.event_ids} for d in sorted(rows, key=lambda d: d.at)]
        return _json(200, {**first.summary(), "outcomes": outcomes, "method": first.method,
                           "path": first.path, "headers": first.headers, **body,
                           "journey": journey})

    async def _ask(self, request: Request) -> dict[str, Any]:
        ask = orjson.loads(await request.body() or b"{}")
        if not isinstance(ask, dict):
            raise ValueError("the body must be a JSON object")
        return ask

    async def _rows(self, ask: dict[str, Any], outcome: str | None = None) -> list[Any]:
        if ask.get("request_ids"):
            return await self.store.search(request_ids=[str(i) for i in ask["request_ids"]])
        criteria = {k: v for k, v in (ask.get("filter") or {}).items() if k in FILTERS}
        if not criteria and outcome is None:
            raise ValueError("give request_ids or a filter")
        return await self.store.search(**criteria,
                                       **({"outcome": outcome} if outcome else {}))

    async def replay(self, request: Request) -> Response:
        rows = await self._rows(await self._ask(request))
        return _json(200, (await replay(self.pipeline, rows)).json())

    async def redrive(self, request: Request) -> Response:
        """From the store, or with ``from_topic: true`` read back from the dead-letter
        topic over the filter's ``since`` (required) to ``until``."""
        ask = await self._ask(request)
        if not ask.get("from_topic"):
            rows = await self._rows(ask, "dead_lettered")
            return _json(200, (await replay(self.pipeline, rows, redrive=True)).json())
        criteria = ask.get("filter") or {}
        if criteria.get("since") is None:
            raise ValueError("from_topic needs filter.since (epoch seconds)")
        policies = self.pipeline.records.policies
        read = await read_dead_letters(
            self.parts.loaded.settings.kafka, float(criteria["since"]),
            None if criteria.get("until") is None else float(criteria["until"]),
            criteria.get("connector_id"),
            lambda cid: bool(cid in policies and policies[cid].fields))
        report = (await replay(self.pipeline, read.deliveries, redrive=True)).json()
        report["skipped"] = read.skipped + report["skipped"]
        return _json(200, {**report, "read": read.records, "truncated": read.truncated})

    async def pause(self, request: Request) -> Response:
        cid, action = request.path_params["connector_id"], request.path_params["action"]
        if action not in ("pause", "resume"):
            return _json(404, {"error": "not_found", "detail": "pause or resume"})
        if cid not in self.pipeline.webhooks and cid not in self.pipeline.push_sources:
            return _json(404, {"error": "unknown_connector", "detail": cid})
        return _json(200, {"paused": sorted(self.controls.set_paused(cid, action == "pause"))})

    async def reload_all(self, request: Request) -> Response:
        self.controls.request_reload()  # every process's reloader; this one's answers now,
        swapped = await self.parts.reload()  # and says what changed
        return _json(200, {"reloaded": swapped})


def create_admin(parts: AdminParts) -> Starlette:
    """The admin app (``AdminApi``)."""
    return AdminApi(parts).app()
