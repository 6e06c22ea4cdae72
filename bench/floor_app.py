"""The floor (issue 18): the least a CPython gateway can do and still keep the delivery
promise, to show what the targets ask of CPython on this machine.

    KAFKA_BOOTSTRAP_SERVERS=... BENCH_TOPIC=... BENCH_DATA=dir uvicorn bench.floor_app:app

A raw ASGI app (no framework): the benchmark's HMAC and timestamp check, then a group
commit on one thread (SQLite WAL, ``synchronous=FULL``: fsync before the 2xx; the
delivery id claimed in the same transaction, so a duplicate is answered 200), then the
committed records produced in the same process (aiokafka, acks=all, idempotence, the
gateway's linger) and deleted once Kafka has them. ``GET /readyz`` says how many are not
on Kafka yet, as the gateway's does. Nothing else: no envelope (the record's value is the
body), no audit trail, no delivery store, no metrics, no replay key, no relay process.
Everything the gateway does beyond this costs on top of it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from connectors.request import event_id

SECRET = b"bench-secret"  # bench.run's
CONNECTOR = "bench"
TOLERANCE = 300
Item = tuple[str, str, bytes, "asyncio.Future[bool]"]  # delivery, event id, body, outcome
PARTITIONER = DefaultPartitioner()  # the producer's own, as gateway.publish uses it


class Floor:
    def __init__(self) -> None:
        path = Path(os.environ["BENCH_DATA"]) / "floor.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.executescript(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
            "CREATE TABLE IF NOT EXISTS dedup (key TEXT PRIMARY KEY) WITHOUT ROWID;"
            "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, key TEXT,"
            " eid TEXT, value BLOB);")
        self.thread = ThreadPoolExecutor(1)  # the database's one thread
        self.pending: list[Item] = []
        self.committing = False
        self.unpublished = 0
        self.topic = os.environ["BENCH_TOPIC"]
        self.producer: AIOKafkaProducer | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.committed: list[tuple[int, Item]] = []  # not on Kafka yet, in commit order
        self.wake = asyncio.Event()

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def submit(self, delivery: str, eid: str, body: bytes) -> asyncio.Future[bool]:
        future = asyncio.get_running_loop().create_future()
        self.pending.append((delivery, eid, body, future))
        if not self.committing:
            self.committing = True
            self._spawn(self._commits())
        return future

    async def _commits(self) -> None:
        loop = asyncio.get_running_loop()
        while self.pending:
            batch, self.pending = self.pending, []
            fresh = await loop.run_in_executor(self.thread, self._commit, batch)
            for item, (new, _) in zip(batch, fresh, strict=True):
                item[3].set_result(new)
            rows = [(row, item) for item, (new, row) in zip(batch, fresh, strict=True) if new]
            self.unpublished += len(rows)
            self.committed.extend(rows)
            self.wake.set()
        self.committing = False

    def _commit(self, batch: list[Item]) -> list[tuple[bool, int]]:
        db = self.db
        keys = [item[0] for item in batch]
        db.execute("BEGIN IMMEDIATE")
        seen = {row[0] for row in db.execute(
            "SELECT key FROM dedup WHERE key IN (SELECT value FROM json_each(?))",
            (orjson.dumps(keys),))}
        out, new = [], []
        for delivery, eid, body, _ in batch:
            fresh = delivery not in seen
            seen.add(delivery)
            out.append(fresh)
            if fresh:
                new.append((delivery, eid, body))
        db.executemany("INSERT INTO dedup VALUES (?)", [(n[0],) for n in new])
        last = db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0]
        db.executemany("INSERT INTO outbox (key, eid, value) VALUES (?, ?, ?)", new)
        db.execute("COMMIT")  # fsync (synchronous=FULL)
        ids = iter(range(last + 1, last + 1 + len(new)))
        return [(f, next(ids) if f else 0) for f in out]

    async def publisher(self) -> None:
        """What was committed, in order, one round at a time (as the gateway's relay)."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.committed:
                rows, self.committed = self.committed, []
                await self._publish(rows)

    async def _publish(self, rows: list[tuple[int, Item]]) -> None:
        """The batch path, as the gateway's relay uses it: one batch per partition."""
        producer = self.producer
        assert producer is not None
        partitions = sorted(await producer.partitions_for(self.topic))
        batches: dict[int, Any] = {}
        for _, (delivery, eid, body, _) in rows:
            key = delivery.encode()
            partition = PARTITIONER(key, partitions, partitions)
            builder = batches.get(partition)
            headers = [("event-id", eid.encode())]
            if builder is None or builder.append(key=key, value=body, timestamp=None,
                                                 headers=headers) is None:
                if builder is not None:
                    await self._send(builder, partition)
                builder = batches[partition] = producer.create_batch()
                builder.append(key=key, value=body, timestamp=None, headers=headers)
        for partition, builder in batches.items():
            await self._send(builder, partition)
        await asyncio.get_running_loop().run_in_executor(
            self.thread, self._delete, [row for row, _ in rows])
        self.unpublished -= len(rows)

    async def _send(self, builder: Any, partition: int) -> None:
        assert self.producer is not None
        builder.close()
        await (await self.producer.send_batch(builder, self.topic, partition=partition))

    def _delete(self, ids: list[int]) -> None:
        self.db.execute("PRAGMA synchronous=NORMAL")  # a lost delete only publishes twice
        self.db.execute("DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))",
                        (orjson.dumps(ids),))
        self.db.execute("PRAGMA synchronous=FULL")


floor = Floor()


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                floor.producer = AIOKafkaProducer(
                    bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"], acks="all",
                    enable_idempotence=True, linger_ms=5)
                await floor.producer.start()
                floor._spawn(floor.publisher())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if floor.producer is not None:
                    await floor.producer.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["method"] == "GET":  # /healthz, /readyz
        await _answer(send, 200, orjson.dumps({"buffer": {"events": floor.unpublished}}))
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    headers = dict(scope["headers"])
    ts = headers.get(b"x-timestamp", b"")
    mac = hmac.new(SECRET, ts + b"." + body, hashlib.sha256).hexdigest().encode()
    if (not hmac.compare_digest(b"sha256=" + mac, headers.get(b"x-signature", b""))
            or not ts.isdigit() or abs(time.time() - int(ts)) > TOLERANCE):
        await _answer(send, 401, b'{"error":"invalid_signature"}')
        return
    delivery = headers.get(b"x-delivery-id", b"").decode()
    eid = event_id(CONNECTOR, delivery)
    fresh = await floor.submit(delivery, eid, body)
    await _answer(send, 202 if fresh else 200, b'{"event_ids":["' + eid.encode() + b'"]}')
