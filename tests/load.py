"""Signed deliveries in flight, for the fault tests: who was answered what."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import orjson

SECRET = "fault-test-secret"


def signed(delivery: str, *, seq: int, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps({"type": "load.tick", "delivery": delivery, "seq": seq,
                         "pad": "x" * 200})
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Signature": mac, "X-Delivery-Id": delivery,
                  "Content-Type": "application/json"}


def webhook_connector(topic: str | None = None) -> dict[str, object]:
    config: dict[str, object] = {"secret": SECRET, "id_header": "X-Delivery-Id",
                                 "event_type_pointer": "/type", "source": "load"}
    if topic:
        config["topic"] = topic
    return {"type": "webhook", "config": config}


@dataclass
class Outcome:
    delivery: str
    status: int | None  # None: no answer (connection refused or cut)
    event_ids: list[str] = field(default_factory=list)
    retry_after: str | None = None


async def drive(url: str, deliveries: list[str], *, concurrency: int = 20,
                after: Callable[[int], Awaitable[None]] | None = None,
                request_timeout: float = 30.0) -> list[Outcome]:
    """POST every delivery (``concurrency`` in flight). ``after(n)`` is awaited by the
    sender that completes the n-th answer, so a test can inject a fault mid-load."""
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for i, d in enumerate(deliveries):
        queue.put_nowait((i, d))
    outcomes: list[Outcome] = []
    done = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while True:
            try:
                i, delivery = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            body, headers = signed(delivery, seq=i)
            try:
                r = await client.post(url, content=body, headers=headers)
                data = r.json() if r.headers.get("content-type") == "application/json" else {}
                outcomes.append(Outcome(delivery, r.status_code, data.get("event_ids", []),
                                        r.headers.get("retry-after")))
            except httpx.HTTPError:
                outcomes.append(Outcome(delivery, None))
            done += 1
            if after is not None:
                await after(done)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=request_timeout, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return outcomes


def accepted_ids(outcomes: list[Outcome]) -> set[str]:
    return {eid for o in outcomes if o.status is not None and 200 <= o.status < 300
            for eid in o.event_ids}


def wait_drained(url: str, timeout: float = 90.0) -> dict[str, object]:
    """Until the gateway's buffer is empty (everything acknowledged by Kafka)."""
    deadline = time.monotonic() + timeout
    last: dict[str, object] = {}
    while time.monotonic() < deadline:
        try:
            last = httpx.get(url + "/readyz", timeout=5).json()
            buffer = last["buffer"]
            assert isinstance(buffer, dict)
            if buffer["events"] == 0:
                return last
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"buffer did not drain: {last}")
