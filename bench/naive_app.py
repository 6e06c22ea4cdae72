"""The reference a team writes in an afternoon (issue 18): Starlette, the HMAC check of
the benchmark's deliveries, and ``send_and_wait`` to Kafka with acks=all, idempotence
and the gateway's linger. No local durability, no deduplication, no audit trail.

    KAFKA_BOOTSTRAP_SERVERS=... BENCH_TOPIC=... uvicorn bench.naive_app:app

Each record carries the ``event-id`` header the benchmark counts on the topic.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaProducer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.request import event_id

SECRET = b"bench-secret"  # bench.run's
CONNECTOR = "bench"
producer: AIOKafkaProducer | None = None


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global producer
    producer = AIOKafkaProducer(bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
                                acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        yield
    finally:
        await producer.stop()


async def receive(request: Request) -> Response:
    body = await request.body()
    ts = request.headers.get("x-timestamp", "")
    given = request.headers.get("x-signature", "").removeprefix("sha256=")
    mac = hmac.new(SECRET, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, given):
        return Response(b'{"error":"invalid_signature"}', 401, media_type="application/json")
    delivery = request.headers.get("x-delivery-id", "")
    eid = event_id(CONNECTOR, delivery)
    assert producer is not None
    await producer.send_and_wait(os.environ["BENCH_TOPIC"], body, key=delivery.encode(),
                                 headers=[("event-id", eid.encode())])
    return Response(b'{"event_ids":["' + eid.encode() + b'"]}', 202,
                    media_type="application/json")


app = Starlette(routes=[Route("/webhooks/{connector_id}", receive, methods=["POST"])],
                lifespan=lifespan)
