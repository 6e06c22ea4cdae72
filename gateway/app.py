"""The Starlette app: routes, and the lifespan that owns buffer, audit and relay."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.base import InboundRequest
from gateway import logging as gateway_logging
from gateway.audit import AuditLog
from gateway.buffer import Buffer
from gateway.config import LoadedConfig, load_config, resolve_path
from gateway.errors import PayloadTooLarge
from gateway.metrics import METRICS
from gateway.pipeline import Answer, Pipeline
from gateway.relay import Relay

log = structlog.get_logger(__name__)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass
class Runtime:
    loaded: LoadedConfig
    buffer: Buffer
    audit: AuditLog
    relay: Relay
    pipeline: Pipeline


def _json(status: int, data: object, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type="application/json")


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 past ``limit`` (on Content-Length and while streaming)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def webhook(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    started = time.perf_counter()
    connector_id = request.path_params["connector_id"]
    given = request.headers.get("x-request-id")
    request_id = given if given and _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id, connector_id=connector_id)
    remote = request.client.host if request.client else None
    try:
        body = await read_body(request, rt.loaded.settings.server.max_body_bytes)
    except ClientDisconnect:  # the sender gave up mid-body: nothing was accepted
        rt.audit.record("rejected", connector_id=connector_id, reason="client_disconnect",
                        request_id=request_id, remote_addr=remote)
        return Response(status_code=400)
    except PayloadTooLarge as exc:
        rt.audit.record("rejected", connector_id=connector_id, reason=exc.reason,
                        request_id=request_id, remote_addr=remote)
        METRICS.requests.labels(connector_id, "rejected").inc()
        return _json(413, {"error": exc.code, "detail": exc.detail},
                     {"X-Request-Id": request_id, "Connection": "close"})
    inbound = InboundRequest(
        method=request.method, url=str(request.url),
        headers={k.decode("latin-1").lower(): v.decode("latin-1")
                 for k, v in request.scope["headers"]},
        query=dict(request.query_params), body=body, remote_addr=remote,
        received_at=datetime.now(UTC))
    answer: Answer = await rt.pipeline.webhook(connector_id, inbound, request_id)
    METRICS.latency.observe(time.perf_counter() - started)
    structlog.contextvars.clear_contextvars()
    return Response(answer.body, answer.status, {**answer.headers, "X-Request-Id": request_id},
                    media_type=answer.content_type)


async def healthz(request: Request) -> Response:
    return _json(200, {"status": "ok"})


async def readyz(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    buffer, relay = rt.buffer, rt.relay
    limits = rt.loaded.settings.buffer
    ready = relay.kafka_ok or buffer.has_room
    reasons = []
    if not relay.kafka_ok:
        reasons.append(f"kafka: {relay.kafka_error}")
    if not buffer.has_room:
        reasons.append("buffer: full")
    body = {
        "ready": ready,
        "reason": "; ".join(reasons) or None,
        "kafka": {"ok": relay.kafka_ok, "error": relay.kafka_error},
        "buffer": {"events": buffer.events, "bytes": buffer.bytes,
                   "max_events": limits.max_events, "max_bytes": limits.max_bytes,
                   "has_room": buffer.has_room},
        "relay": {"leader": relay.leader, "published": relay.published},
    }
    return _json(200 if ready else 503, body)


async def metrics(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    METRICS.buffer_events.set(rt.buffer.events)
    METRICS.buffer_bytes.set(rt.buffer.bytes)
    return Response(generate_latest(METRICS.registry), media_type=CONTENT_TYPE_LATEST)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _json(exc.status_code, {"error": code, "detail": exc.detail}, exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled_error", error=type(exc).__name__)
    return _json(500, {"error": "internal", "detail": "internal error"})


def create_app(loaded: LoadedConfig) -> Starlette:
    settings = loaded.settings

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        buffer = Buffer(Path(settings.data_dir) / "buffer.db", settings.buffer)
        audit = AuditLog(settings.audit_path)
        await buffer.open()
        await audit.open()
        relay = Relay(buffer, settings.kafka, audit,
                      max_request_size=max(1 << 20, 2 * settings.server.max_body_bytes + 65536))
        relay.start()
        app.state.runtime = Runtime(loaded, buffer, audit, relay,
                                    Pipeline(settings, loaded.connectors, buffer, audit))
        log.info("gateway_started", connectors=sorted(loaded.connectors),
                 data_dir=settings.data_dir, pid=os.getpid())
        try:
            yield
        finally:
            await relay.stop()
            await buffer.close()
            await audit.close()
            log.info("gateway_stopped")

    return Starlette(
        routes=[
            Route("/webhooks/{connector_id}", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, 500: server_error},
        lifespan=lifespan,
    )


def create_app_from_env() -> Starlette:
    """uvicorn factory for worker processes: config from ``GATEWAY_CONFIG``."""
    gateway_logging.configure()
    return create_app(load_config(resolve_path(None)))
