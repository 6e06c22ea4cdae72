"""The Starlette app: routes, and the lifespan that owns buffer, audit and relay."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import itertools
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson
import structlog
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from connectors.base import Connector
from connectors.request import InboundRequest
from gateway import logging as gateway_logging
from gateway.admin import AdminParts, AdminServer, Controls, create_admin
from gateway.answers import UNKNOWN_CONNECTOR, Answer, client_request_id, shown_id
from gateway.api_events import ApiEvents
from gateway.audit import AuditLog
from gateway.buffer import Buffer
from gateway.certification import Certifier, read_state
from gateway.config import LoadedConfig, load_config, resolve_path
from gateway.errors import PayloadTooLarge, answer_for
from gateway.lifecycle import Lifecycle
from gateway.metrics import METRICS, MetricsSync, render
from gateway.pipeline import Pipeline
from gateway.polling import PollRunner
from gateway.relay import Relay, RelayMonitor
from gateway.reloading import Reloader
from gateway.shared import Shared
from gateway.tasks import cancel, supervised
from gateway.telemetry import Telemetry
from gateway.tracing import Trace, incoming

log = structlog.get_logger(__name__)

# Request ids: a random per-process prefix and a counter (uuid4 per request costs more).
_ID_PREFIX = uuid.uuid4().hex[:12] + "-"
_ID_COUNTER = itertools.count(1)
# The receive span's name: [0] webhooks, [1] /api/events.
_ROUTES = ("POST /webhooks/{connector_id}", "POST /api/events")


@dataclass
class Runtime:
    loaded: LoadedConfig
    buffer: Buffer
    audit: AuditLog
    relay: Relay | RelayMonitor
    pipeline: Pipeline
    api: ApiEvents
    metrics: MetricsSync
    telemetry: Telemetry | None
    shared: Shared | None = None  # redis: state shared by replicas


def _json(status: int, data: object, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type="application/json")


class _Disconnected(Exception):
    pass


def _digits(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` takes '²' and other scripts' digits), bounded."""
    return text.isascii() and text.isdigit() and len(text) < 20


async def read_body(headers: dict[str, str], receive: Receive, limit: int) -> bytes:
    """The raw body, refused with 413 past ``limit`` (on Content-Length and while streaming)."""
    declared = headers.get("content-length")
    if declared is not None and _digits(declared) and int(declared) > limit:
        raise PayloadTooLarge(f"body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body exceeds {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes, request_id: str,
                  extra: Mapping[str, str] | None = None,
                  content_type: str = "application/json") -> None:
    headers = [(b"content-type", content_type.encode()),
               (b"content-length", str(len(body)).encode()),
               (b"x-request-id", request_id.encode())]
    if extra:
        headers.extend((k.lower().encode(), v.encode()) for k, v in extra.items())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Gateway:
    """The ASGI app: ``POST /webhooks/{connector_id}`` handled here directly (the hot
    path: no per-request framework objects); everything else, and the lifespan, by the
    Starlette app behind it."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.runtime: Runtime | None = None  # set by the lifespan; State lookups are slow

    @property
    def state(self) -> State:
        return self.app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "GET", "OPTIONS", "HEAD"):
            path: str = scope["path"]
            if path.startswith("/webhooks/") and "/" not in path[10:] and len(path) > 10:
                await self.serve(path[10:], scope, receive, send)
                return
            if path == "/api/events" and scope["method"] == "POST":
                await self.serve(None, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def serve(self, connector_id: str | None, scope: Scope, receive: Receive,
                    send: Send) -> None:
        """One delivery: to ``connector_id``'s webhook, or (None) to /api/events."""
        rt = self.runtime
        if rt is None:
            rt = self.runtime = self.app.state.runtime
        started = time.perf_counter()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        # Always the gateway's own id; a client's X-Request-Id is recorded beside it.
        request_id = f"{_ID_PREFIX}{next(_ID_COUNTER):x}"
        client = scope.get("client")
        remote = client[0] if client else None
        shown = connector_id and shown_id(connector_id)
        label = (connector_id if connector_id is None or connector_id in rt.pipeline.webhooks
                 else UNKNOWN_CONNECTOR) or "-"
        trace: Trace | None = None
        try:
            try:
                body = await read_body(headers, receive,
                                       rt.loaded.settings.server.max_body_bytes)
            except _Disconnected:  # the sender gave up mid-body: nothing was accepted
                _rejected(rt, shown, label, request_id, remote, headers,
                          reason="client_disconnect")
                return
            except PayloadTooLarge as exc:
                refusal = answer_for(exc)
                _rejected(rt, shown, label, request_id, remote, headers, reason=refusal.reason)
                await _answer(send, refusal.status, orjson.dumps({"error": refusal.code,
                                                                  "detail": refusal.detail}),
                              request_id, {"connection": "close"})
                return
            query: bytes = scope["query_string"]
            inbound = InboundRequest(
                method=scope["method"],
                url=f"{scope['scheme']}://{headers.get('host', '')}{scope['path']}"
                    + (f"?{query.decode('latin-1')}" if query else ""),
                headers=headers,
                query=dict(parse_qsl(query.decode("latin-1"))) if query else {},
                body=body, remote_addr=remote, received_at=datetime.now(UTC))
            trace = (incoming(headers) if rt.telemetry is None else rt.telemetry.receive(
                headers, _ROUTES[connector_id is None], shown, started))
            answer: Answer = (
                await rt.pipeline.webhook(connector_id, inbound, request_id, trace)
                if connector_id is not None else await rt.api.handle(inbound, request_id,
                                                                     trace))
        except Exception as exc:
            log.error("unhandled_error", error=type(exc).__name__, request_id=request_id,
                      connector_id=connector_id, exc_info=exc)
            rt.audit.record("failed", connector_id=shown, reason="internal",
                            request_id=request_id, remote_addr=remote,
                            client_request_id=client_request_id(headers))
            METRICS.count(label, "failed")
            await _answer(send, 500, b'{"error":"internal","detail":"internal error"}',
                          request_id)
            if rt.telemetry is not None and trace is not None:
                rt.telemetry.answered(trace, 500, "failed")
            return
        await _answer(send, answer.status, answer.body, request_id, answer.headers,
                      answer.content_type)
        if rt.telemetry is not None:
            rt.telemetry.answered(trace, answer.status, answer.outcome)
        METRICS.observe(time.perf_counter() - started)


async def healthz(request: Request) -> Response:
    return _json(200, {"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when an event answered 2xx now reaches Kafka: Kafka is reachable or the
    buffer has room, buffer commits succeed, and the oldest buffered event is younger
    than ``buffer.max_age_seconds`` (else events are stuck). Not ready names why."""
    rt: Runtime = request.app.state.runtime
    buffer, relay = rt.buffer.outbox, rt.relay
    limits = rt.loaded.settings.buffer
    age = buffer.oldest_age()
    reasons = []
    if not relay.kafka_ok:
        reasons.append(f"kafka: {relay.kafka_error}")
    if not buffer.has_room:
        reasons.append("buffer: full")
    if buffer.commit_error is not None:
        reasons.append(f"buffer: commits fail ({buffer.commit_error})")
    if age > limits.max_age_seconds:
        reasons.append(f"buffer: the oldest event waits for {age:.0f} s, more than"
                       f" buffer.max_age_seconds ({limits.max_age_seconds:g})")
    # Kafka refusing the gateway (a wrong password, an untrusted certificate) will not
    # heal by itself: not ready, though the buffer keeps taking events meanwhile.
    shared_down = rt.shared is not None and not rt.shared.ok
    if shared_down:
        reasons.append(f"redis: unreachable (on_redis_down: "
                       f"{rt.loaded.settings.redis.on_redis_down})")
    ready = ((relay.kafka_ok or buffer.has_room) and not relay.kafka_refused
             and buffer.commit_error is None and age <= limits.max_age_seconds
             and not (shared_down and rt.loaded.settings.redis.on_redis_down == "reject"))
    body = {
        "ready": ready,
        "reason": "; ".join(reasons) or None,
        "kafka": {"ok": relay.kafka_ok, "error": relay.kafka_error,
                  "refused": relay.kafka_refused,
                  "missing_topics": relay.missing_topics},
        "buffer": {"events": buffer.events, "bytes": buffer.bytes,
                   "dedup_bytes": buffer.dedup_bytes, "oldest_age_seconds": round(age, 1),
                   "max_events": limits.max_events, "max_bytes": limits.max_bytes,
                   "has_room": buffer.has_room, "commit_error": buffer.commit_error,
                   "quarantined": buffer.quarantined},
        "relay": {"leader": relay.leader, "published": relay.published},
        "redis": None if rt.shared is None else rt.shared.status(),
        "pollers": await rt.buffer.status.read_pollers(),
        "connectors": (await asyncio.to_thread(
            read_state, rt.loaded.settings.data_dir)).get("connectors", {}),
    }
    return _json(200 if ready else 503, body)


async def metrics(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    snapshots = rt.metrics.totals()
    buffer = rt.buffer.outbox
    state = await asyncio.to_thread(read_state, rt.loaded.settings.data_dir)
    text = render(snapshots, {
        "gateway_buffer_events": buffer.events, "gateway_buffer_bytes": buffer.bytes,
        "gateway_buffer_max_bytes": rt.loaded.settings.buffer.max_bytes,
        "gateway_buffer_dedup_bytes": buffer.dedup_bytes,
        "gateway_buffer_oldest_event_age_seconds": buffer.oldest_age(),
        "gateway_buffer_commit_failing": int(buffer.commit_error is not None),
        "gateway_quarantined_events": buffer.quarantined,
        "gateway_relay_published_events": rt.relay.published,
        "gateway_relay_leader": int(rt.relay.leader),
        "gateway_kafka_up": int(rt.relay.kafka_ok),
        "gateway_workers_reporting": sum(s.get("role") != "relay" for s in snapshots),
        **({} if rt.shared is None else {"gateway_redis_up": int(rt.shared.ok)})},
        state.get("connectors", {}))
    return Response(text, media_type=CONTENT_TYPE_LATEST)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _json(exc.status_code, {"error": code, "detail": exc.detail}, exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled_error", error=type(exc).__name__)
    return _json(500, {"error": "internal", "detail": "internal error"})


def _tune_gc() -> None:
    """Fewer garbage-collector passes on the request path. A request allocates a few
    hundred container objects that reference counting frees, yet at the default
    threshold (700) they trigger a young-generation pass every few requests, and each
    pass walks what the startup left behind. Freezing the startup objects and raising the
    threshold measured 5 to 9% more throughput (``bench/RESULTS.md``)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _rejected(rt: Runtime, shown: str | None, label: str, request_id: str,
              remote: str | None, headers: Mapping[str, str], *, reason: str) -> None:
    """A request refused before its body was whole: audited, counted and logged alike, as
    ``answers.auditor`` does for the others."""
    client = client_request_id(headers)
    rt.audit.record("rejected", connector_id=shown, reason=reason, request_id=request_id,
                    remote_addr=remote, client_request_id=client)
    METRICS.outcome(None, label, "rejected", reason, 0, None)
    log.info("rejected", reason=reason, request_id=request_id, connector_id=shown,
             client_request_id=client)


def _on_sighup(controls: Controls) -> None:
    """``kill -HUP``: a reload, in every process (through ``Controls``), as ``POST
    /admin/reload`` does. Only where the loop may take signals (the main thread)."""
    with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP,
                                                      controls.request_reload)


async def _close_current(loaded: LoadedConfig, connector_id: str) -> None:
    connector = loaded.connectors.get(connector_id)
    if connector is not None:
        await connector.aclose()


async def _close_added(loaded: LoadedConfig, initial: set[str]) -> None:
    for cid in set(loaded.connectors) - initial:
        await loaded.connectors[cid].aclose()


def _started(start: Callable[[], object]) -> Callable[[], Awaitable[None]]:
    """A synchronous start (it spawns its tasks) as a lifecycle step."""
    async def step() -> None:
        start()
    return step


def _closing(loaded: LoadedConfig) -> Callable[[], Awaitable[None]]:
    async def step() -> None:
        if loaded.credentials is not None:
            await asyncio.to_thread(loaded.credentials.close)
    return step


def create_app(loaded: LoadedConfig, *, relay_in_process: bool = True) -> Gateway:
    """The gateway app. With ``relay_in_process=False`` the relay runs elsewhere
    (``gateway run`` starts ``gateway relay`` beside its workers) and this app only reads
    its status."""
    settings = loaded.settings

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        parts = Lifecycle()  # each part starts after what it needs, stops before it
        buffer = Buffer(Path(settings.data_dir) / "buffer.db", settings.buffer)
        audit = AuditLog.from_config(settings.audit_path, settings.audit,
                                     loaded.audit_retention())
        parts.add("buffer", start=buffer.open, stop=buffer.close)
        deliveries = loaded.delivery_store()
        parts.add("deliveries", start=deliveries.open, stop=deliveries.close)
        parts.add("audit", start=audit.open, stop=audit.close)
        parts.add("credentials", stop=_closing(loaded))
        for cid, connector in loaded.connectors.items():  # stopped: the one a reload left
            parts.add(f"connector:{cid}", start=connector.start, needs=["credentials"],
                      stop=functools.partial(_close_current, loaded, cid))
        connectors = [f"connector:{cid}" for cid in loaded.connectors]
        shared = Shared.from_config(settings.redis, settings.buffer.dedup_window_seconds)
        parts.add("shared", start=_started(shared.start) if shared else None,
                  stop=shared.stop if shared else None)
        parts.add("connectors-added", needs=connectors,  # by a reload: stopped first
                  stop=functools.partial(_close_added, loaded, set(loaded.connectors)))
        telemetry = Telemetry.from_config(settings.telemetry, "worker")
        if telemetry is not None:
            parts.add("telemetry", stop=functools.partial(asyncio.to_thread, telemetry.close))
        relay: Relay | RelayMonitor
        if relay_in_process:
            relay = Relay(buffer, settings.kafka, audit, loaded.fixed_topics(), telemetry,
                          deliveries)
        else:
            relay = RelayMonitor(buffer)
        parts.add("relay", start=_started(relay.start), stop=relay.stop,
                  needs=["buffer", "audit", "telemetry", "deliveries"])
        runner = PollRunner(settings, loaded.connectors if relay_in_process else {}, buffer,
                            audit, loaded.policies, loaded.acls, loaded.write_back,
                            runs_pollers=relay_in_process, shared=shared)
        parts.add("pollers", start=_started(runner.start), stop=runner.stop,
                  needs=["relay", "shared", *connectors])
        pipeline = Pipeline(settings, loaded.connectors, buffer, audit, telemetry,
                            loaded.policies, loaded.acls, deliveries, shared)
        sync = MetricsSync(METRICS, buffer, audit)
        parts.add("metrics", start=_started(sync.start), stop=sync.stop,
                  needs=["buffer", "audit"])

        async def swap(_: LoadedConfig, changed: dict[str, Connector[Any]],
                       removed: list[str]) -> None:
            pipeline.swap(changed, loaded.acls, loaded.policies, removed)
            await runner.swap(changed, removed, loaded.acls, loaded.policies)

        controls = Controls(settings.data_path)
        pipeline.paused = controls.paused
        _on_sighup(controls)
        reloader = Reloader(loaded, swap, controls.reload_requested_at)
        if reloader.watching:
            reloading: list[asyncio.Task[None]] = []
            parts.add("reloader", needs=["pollers", *connectors],
                      start=_started(lambda: reloading.append(
                          supervised("credential-reload", reloader.run))),
                      stop=lambda: cancel(reloading.pop() if reloading else None))
        token = settings.admin.token
        if isinstance(relay, Relay) and token is not None:  # where the relay runs
            admin = AdminServer(settings.admin, create_admin(AdminParts(
                token.get_secret_value(), loaded, deliveries, pipeline, controls, relay,
                reloader.reload)))
            parts.add("admin", start=admin.start, stop=admin.stop,
                      needs=["deliveries", "relay", "pollers"])
        if isinstance(relay, Relay):  # else the relay's process evaluates
            certifier = Certifier(loaded, buffer, runner, lambda: relay.leader)
            parts.add("certifier", start=_started(certifier.start), stop=certifier.stop,
                      needs=["pollers", "relay", "metrics"])
        await parts.start()
        app.state.runtime = Runtime(loaded, buffer, audit, relay, pipeline, ApiEvents(pipeline),
                                    sync, telemetry, shared)
        _tune_gc()
        log.info("gateway_started", connectors=sorted(loaded.connectors),
                 data_dir=settings.data_dir, pid=os.getpid())
        try:
            yield
        finally:
            await parts.stop()
            log.info("gateway_stopped")

    return Gateway(Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, 500: server_error},
        lifespan=lifespan,
    ))


def create_app_from_env() -> Gateway:
    """uvicorn factory for worker processes: config from ``GATEWAY_CONFIG``; the relay
    runs in-process unless ``GATEWAY_RELAY=external``."""
    gateway_logging.configure()
    return create_app(load_config(resolve_path(None)),
                      relay_in_process=os.environ.get("GATEWAY_RELAY") != "external")
