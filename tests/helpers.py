"""Shared test plumbing: a real uvicorn server in a thread, a gateway subprocess, Kafka reads."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import orjson
import uvicorn
import yaml
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from devtools.localkafka import free_port
from gateway.app import Gateway, create_app
from gateway.config import load_config
from gateway.server import uvicorn_config

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent


def github_headers(body: bytes, secret: str, *, event: str = "pull_request",
                   delivery: str | None = None) -> dict[str, str]:
    """The headers of a GitHub delivery of ``body`` signed with ``secret``."""
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={mac}", "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "Content-Type": "application/json"}


def accepted_github(url: str, connector: str, body: bytes, secret: str) -> str:
    """Delivers ``body`` as GitHub would to ``connector``; asserts 202 and returns the
    (first) event id."""
    r = httpx.post(f"{url}/webhooks/{connector}", content=body,
                   headers=github_headers(body, secret))
    assert r.status_code == 202, r.text
    event_id: str = r.json()["event_ids"][0]
    return event_id


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def base_config(bootstrap: str, data_dir: Path, topic: str, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, "max_body_bytes": 65536},
        "kafka": {"bootstrap_servers": bootstrap, "topic": topic,
                  "dead_letter_topic": f"{topic.split('.')[0]}.dlq",
                  "request_timeout_ms": 5000},
        "data_dir": str(data_dir),
        "connectors": {},
    }
    cfg.update(extra)
    return cfg


@dataclass
class ThreadServer:
    """The gateway app on a real uvicorn server, in a thread of the test process."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread
    data_dir: Path

    @property
    def audit_lines(self) -> list[dict[str, Any]]:
        import orjson

        path = self.data_dir / "audit.jsonl"
        if not path.exists():
            return []
        return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]

    def wait_audit(self, predicate: Any, count: int = 1,
                   timeout: float = 5.0) -> list[dict[str, Any]]:
        """The audit lines matching ``predicate``, once at least ``count`` were written."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.audit_lines if predicate(line)]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    @property
    def gateway(self) -> Gateway:
        """The app being served; its ``state.runtime`` holds the pipeline and buffer."""
        app = self.server.config.app
        assert isinstance(app, Gateway), app
        return app

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@contextlib.contextmanager
def local_api(app: Any) -> Iterator[str]:
    """Any ASGI ``app`` (a provider's API, a token endpoint, Vault's routes) on a real
    uvicorn server in a thread: its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def thread_server(config_path: Path) -> Iterator[ThreadServer]:
    loaded = load_config(config_path, env={})
    port = free_port()
    config = uvicorn_config(create_app(loaded), loaded.settings.server, host="127.0.0.1",
                            port=port, loop="asyncio", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    ts = ThreadServer(f"http://127.0.0.1:{port}", server, thread,
                      Path(loaded.settings.data_dir))
    try:
        yield ts
    finally:
        ts.stop()


class GatewayProcess:
    """``gateway run`` as a user runs it: a subprocess that can be killed with SIGKILL."""

    def __init__(self, config_path: Path, bootstrap: str, *, workers: int = 1,
                 port: int | None = None, log: Path | None = None) -> None:
        self.config_path = config_path
        self.bootstrap = bootstrap
        self.workers = workers
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log or config_path.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> GatewayProcess:
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "--config", str(self.config_path),
                 "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", str(self.workers)],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"gateway did not start: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group: the supervisor and every worker."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.kill()


def consume(bootstrap: str, topic: str, *, expect: int | None = None,
            timeout: float = 20.0, settle: float = 1.5) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on ``topic`` from the start: until ``expect`` arrived (then ``settle``
    more seconds to catch extras), or until ``timeout``."""

    async def run() -> list[ConsumerRecord[bytes, bytes]]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        out: list[ConsumerRecord[bytes, bytes]] = []
        try:
            deadline = time.monotonic() + timeout
            reached: float | None = None
            while time.monotonic() < deadline:
                if reached is not None and time.monotonic() > reached + settle:
                    break
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    out.extend(records)
                if expect is not None and len(out) >= expect and reached is None:
                    reached = time.monotonic()
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


def event_types(bootstrap: str, topic: str, expect: int) -> list[str]:
    """The ``type`` of each envelope on ``topic`` (``consume``; tombstones left out)."""
    records = consume(bootstrap, topic, expect=expect, timeout=20)
    return [orjson.loads(r.value)["type"] for r in records if r.value is not None]


def settle(step: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits (a connector verifying with keys it holds) to its
    end, without an event loop; fails if it does wait."""
    try:
        step.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    step.close()
    raise AssertionError("the coroutine waited on I/O: run it in an event loop")
