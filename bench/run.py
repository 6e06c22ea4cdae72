"""Throughput and latency of the gateway against a bare Starlette app, on one machine.

    .venv/bin/python -m bench.run [--concurrency 64] [--duration 10] [--workers 1 2]
                                  [--rounds 3]

Starts a real Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS is set), then for each worker
count: a raw ASGI app on uvicorn that reads the body and answers 202 (the floor under any
ASGI app); then, alternating for ``--rounds`` rounds, the bare Starlette app doing the
same and the gateway as a user runs it (``gateway run``), each driven with signed
deliveries through the generic ``webhook`` connector at full load. The ratio compares
the medians, so that the machine's drift from run to run hits both alike. Then the
gateway once more at half its median peak rate, for latency. After that it consumes the
topic and counts accepted ids that are missing (must be 0). A canned-answer server first
shows the load generator's own ceiling.

The load generator is a raw HTTP/1.1 keep-alive client on uvloop with pre-signed
requests, so its cost per request is a write and a read. Latency at a fixed rate is
measured from each request's scheduled send time (no coordinated omission).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import orjson
import uvloop
import yaml
from aiokafka import AIOKafkaConsumer

from connectors.request import event_id
from devtools.localkafka import LocalKafka, free_port

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"
CONNECTOR = "bench"
WARM_UP = 3.0  # seconds of full load before any measured run: steady state, not startup


@dataclass
class Run:
    name: str
    requests: int
    ok: int
    errors: int
    seconds: float
    rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


def build_requests(n: int, port: int, payload: int, tag: str) -> tuple[list[bytes], list[str]]:
    ts = str(int(time.time()))
    pad = "x" * max(0, payload - 120)
    reqs, deliveries = [], []
    for i in range(n):
        delivery = f"{tag}-{i}"
        body = orjson.dumps({"type": "bench.event", "seq": i, "delivery": delivery,
                             "pad": pad})
        mac = hmac.new(SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        reqs.append(
            (f"POST /webhooks/{CONNECTOR} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
             f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
             f"X-Signature: sha256={mac}\r\nX-Timestamp: {ts}\r\n"
             f"X-Delivery-Id: {delivery}\r\n\r\n").encode() + body)
        deliveries.append(delivery)
    return reqs, deliveries


async def drive(port: int, reqs: list[bytes], *, concurrency: int, duration: float,
                rate: float | None = None) -> tuple[array[int], list[float], float]:
    """Send ``reqs`` in order over ``concurrency`` keep-alive connections for ``duration``
    seconds (or at ``rate`` per second). Returns status per request, latencies, seconds."""
    statuses = array("H", bytes(2 * len(reqs)))
    latencies: list[float] = []
    nxt = 0
    start = time.perf_counter()
    stop_at = start + duration
    last_done = start

    async def connection() -> None:
        nonlocal nxt, last_done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while nxt < len(reqs):
                i = nxt
                nxt += 1
                if rate is not None:
                    sent = start + i / rate
                    if sent >= stop_at:
                        return
                    delay = sent - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                else:
                    sent = time.perf_counter()
                    if sent >= stop_at:
                        return
                writer.write(reqs[i])
                head = await reader.readuntil(b"\r\n\r\n")
                statuses[i] = int(head[9:12])
                lower = head.lower()
                at = lower.find(b"content-length:")
                if at >= 0:
                    await reader.readexactly(int(lower[at + 15:lower.find(b"\r\n", at)]))
                done = time.perf_counter()
                latencies.append(done - sent)
                last_done = max(last_done, done)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return statuses, latencies, last_done - start


def summarize(name: str, statuses: array[int], latencies: list[float],
              seconds: float) -> Run:
    sent = sum(1 for s in statuses if s)
    ok = sum(1 for s in statuses if 200 <= s < 300)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return Run(name, sent, ok, sent - ok, round(seconds, 2), round(ok / seconds, 1),
               round(q[49] * 1000, 2), round(q[94] * 1000, 2), round(q[98] * 1000, 2))


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None
          ) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, **(env or {})}, start_new_session=True)


def gateway_config(work: Path, bootstrap: str, topic: str) -> Path:
    cfg = {
        "server": {"host": "127.0.0.1", "max_body_bytes": 1_048_576},
        "kafka": {"bootstrap_servers": bootstrap, "topic": topic},
        "data_dir": str(work / "data"),
        "connectors": {CONNECTOR: {"type": "webhook", "config": {
            "secret": SECRET, "signature_header": "X-Signature", "prefix": "sha256=",
            "timestamp_header": "X-Timestamp", "id_header": "X-Delivery-Id",
            "event_type_pointer": "/type", "source": "bench"}}},
    }
    work.mkdir(parents=True, exist_ok=True)
    path = work / "gateway.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


async def topic_ids(bootstrap: str, topic: str, expect: int, wait: float = 120) -> set[str]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_partition_fetch_bytes=8 << 20)
    await consumer.start()
    ids: set[str] = set()
    try:
        deadline = time.monotonic() + wait
        while len(ids) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=10000)
            for records in batch.values():
                for r in records:
                    ids.add(dict(r.headers)["event-id"].decode())
    finally:
        await consumer.stop()
    return ids


def wait_drained(url: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/readyz", timeout=5).json()["buffer"]["events"] == 0:
                return
        time.sleep(0.5)
    raise RuntimeError("the gateway's buffer did not drain")


def run_server(name: str, cmd: list[str], port: int, work: Path, args: argparse.Namespace,
               requests: list[bytes], env: dict[str, str] | None = None) -> Run:
    proc = spawn(cmd, work / f"{name}.log", env)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        uvloop.run(drive(port, requests, concurrency=args.concurrency, duration=WARM_UP))
        st, lat, secs = uvloop.run(drive(port, requests, concurrency=args.concurrency,
                                         duration=args.duration))
        return summarize(name, st, lat, secs)
    finally:
        stop(proc)


def run_uvicorn_app(name: str, app: str, workers: int, work: Path,
                    args: argparse.Namespace) -> Run:
    """A reference app (``bench/{app}_app.py``) on uvicorn, driven like the gateway."""
    port = free_port()
    reqs, _ = build_requests(args.max_requests, port, args.payload, app)
    run = run_server(name, [sys.executable, "-m", "uvicorn", f"bench.{app}_app:app",
                            "--port", str(port), "--workers", str(workers), "--loop", "uvloop",
                            "--http", "httptools", "--log-level", "warning",
                            "--no-access-log"], port, work, args, reqs)
    print_run(run)
    return run


class GatewayBench:
    """The gateway as a user runs it (``gateway run``), for one worker count: started
    once, measured at peak in several rounds (between which the caller runs the bare
    app), then at half its median peak; finally the accepted ids are checked on the
    topic."""

    def __init__(self, workers: int, bootstrap: str, work: Path, args: argparse.Namespace
                 ) -> None:
        self.workers, self.bootstrap, self.args = workers, bootstrap, args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.topic = f"bench.w{workers}.{int(time.time())}"
        self.accepted: set[str] = set()
        self.rounds = 0
        config = gateway_config(work / f"gw{workers}", bootstrap, self.topic)
        self.proc = spawn([sys.executable, "-m", "gateway", "run", "--config", str(config),
                           "--port", str(self.port), "--workers", str(workers)],
                          work / f"gateway-w{workers}.log",
                          {"KAFKA_BOOTSTRAP_SERVERS": bootstrap})
        wait_http(self.url + "/healthz", self.proc)
        self._drive(f"warm{workers}", args.max_requests, duration=WARM_UP)

    def _drive(self, tag: str, n: int, **kwargs: float) -> tuple[array[int], list[float],
                                                                  float]:
        reqs, ids = build_requests(n, self.port, self.args.payload, tag)
        st, lat, secs = uvloop.run(drive(self.port, reqs, concurrency=self.args.concurrency,
                                         **kwargs))
        self.accepted |= {ids[i] for i, s in enumerate(st) if s == 202}
        wait_drained(self.url)  # the relay's catching up must not overlap the next run
        return st, lat, secs

    def peak(self) -> Run:
        self.rounds += 1
        st, lat, secs = self._drive(f"peak{self.workers}-{self.rounds}",
                                    self.args.max_requests, duration=self.args.duration)
        return summarize(f"gateway x{self.workers} peak", st, lat, secs)

    def at_rate(self, rate: float) -> Run:
        st, lat, secs = self._drive(f"half{self.workers}", self.args.max_requests,
                                    duration=self.args.duration, rate=rate)
        return summarize(f"gateway x{self.workers} @ {rate:.0f}/s", st, lat, secs)

    def finish(self) -> tuple[int, int]:
        """Stop the gateway; (accepted ids, how many of them are not on the topic)."""
        stop(self.proc)
        expected = {event_id(CONNECTOR, d) for d in self.accepted}
        on_topic = uvloop.run(topic_ids(self.bootstrap, self.topic, len(expected)))
        return len(expected), len(expected - on_topic)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--payload", type=int, default=1024, help="body bytes")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3,
                        help="bare app and gateway peak runs, alternated; medians compared")
    parser.add_argument("--max-requests", type=int, default=150_000)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    kafka: LocalKafka | None = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        kafka = LocalKafka()
        bootstrap = kafka.start()
    print(f"# {os.cpu_count()} cores; concurrency {args.concurrency}; {args.duration:.0f}s"
          f" runs; {args.rounds} rounds; body {args.payload} B; Kafka {bootstrap};"
          f" logs in {work}", flush=True)
    results: dict[str, object] = {"args": vars(args)}
    try:
        port = free_port()
        reqs, _ = build_requests(args.max_requests, port, args.payload, "load")
        ceiling = run_server("generator ceiling (canned server)",
                             [sys.executable, "-m", "bench.null_server", str(port)], port,
                             work, args, reqs)
        print_run(ceiling)
        results["ceiling"] = asdict(ceiling)
        for workers in args.workers:
            raw = run_uvicorn_app(f"raw ASGI on uvicorn x{workers}", "raw", workers, work, args)
            gateway = GatewayBench(workers, bootstrap, work, args)
            bares, peaks = [], []
            for _ in range(args.rounds):  # alternated, so drift hits both alike
                bares.append(run_uvicorn_app(f"bare starlette x{workers}", "bare", workers,
                                             work, args))
                peaks.append(gateway.peak())
                print_run(peaks[-1])
            bare_rate = statistics.median(r.rate for r in bares)
            peak_rate = statistics.median(r.rate for r in peaks)
            half = gateway.at_rate(peak_rate / 2)
            print_run(half)
            accepted, missing = gateway.finish()
            ratio = peak_rate / bare_rate if bare_rate else 0.0
            rounds = ", ".join(f"{p.rate / b.rate:.2f}" for b, p in zip(bares, peaks,
                                                                         strict=True))
            print(f"  workers={workers}: median gateway {peak_rate:.0f}/s, median bare"
                  f" {bare_rate:.0f}/s, ratio {ratio:.2f} (by round: {rounds});"
                  f" accepted ids {accepted}, missing on the topic: {missing}", flush=True)
            results[f"workers_{workers}"] = {
                "raw": asdict(raw), "bare": [asdict(b) for b in bares],
                "peak": [asdict(p) for p in peaks], "half": asdict(half),
                "ratio": round(ratio, 3), "accepted": accepted, "missing": missing}
    finally:
        if kafka is not None:
            kafka.close()
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    return 0


def print_run(r: Run) -> None:
    print(f"{r.name:<34} {r.rate:>9.0f}/s  p50 {r.p50_ms:>7.2f} ms  p95 {r.p95_ms:>7.2f} ms"
          f"  p99 {r.p99_ms:>7.2f} ms  ({r.ok} ok, {r.errors} not 2xx, {r.seconds}s)",
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
