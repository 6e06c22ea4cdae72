"""Throughput of one and of two gateway replicas sharing state in Redis, on one machine.

    .venv/bin/python -m bench.replicas [--duration 10] [--concurrency 64] [--rounds 2]

Starts a real Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS is set) and Debian's
redis-server, then alternates for ``--rounds`` rounds: one ``gateway run`` without Redis
(one node, today's default), one replica with Redis (what sharing costs), and two
replicas with Redis, each with its own data directory, the load split over them. Each
run counts the sustained rate: deliveries answered 2xx divided by the time until the
last of them was on Kafka (every replica's buffer empty), and checks that none of them
is missing on the topic. On a 2-core machine the replicas, the broker, Redis and the
load generator share the same two cores: a second replica adds no CPU, so it measures
what the sharing costs, not how far the gateway scales out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from array import array
from pathlib import Path

import httpx
import uvloop
import yaml

from bench.run import (
    CONNECTOR,
    build_requests,
    drive,
    gateway_config,
    spawn,
    stop,
    topic_ids,
    wait_http,
)
from connectors.request import event_id
from devtools.localkafka import LocalKafka, free_port
from devtools.localredis import LocalRedis


def buffered(urls: list[str]) -> int:
    total = 0
    for url in urls:
        with contextlib.suppress(httpx.HTTPError):
            total += httpx.get(url + "/readyz", timeout=5).json()["buffer"]["events"]
    return total


def run(label: str, replicas: int, redis: str | None, bootstrap: str, work: Path,
        args: argparse.Namespace) -> dict[str, float]:
    stamp = int(time.time() * 1000)  # unique ids, data directories and topic per run
    topic = f"bench.replicas.{label}.{stamp}"
    procs, ports = [], []
    try:
        for i in range(replicas):
            path = gateway_config(work / f"{label}-{stamp}-{i}", bootstrap, topic)
            if redis is not None:
                cfg = yaml.safe_load(path.read_text())
                cfg["redis"] = {"url": redis}
                path.write_text(yaml.safe_dump(cfg))
            port = free_port()
            procs.append(spawn([sys.executable, "-m", "gateway", "run", "--config", str(path),
                                "--port", str(port)], work / f"{label}-{i}.log",
                               {"KAFKA_BOOTSTRAP_SERVERS": bootstrap}))
            wait_http(f"http://127.0.0.1:{port}/healthz", procs[-1])
            ports.append(port)
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        per = [build_requests(args.max_requests, p, args.payload, f"{label}-{stamp}-{i}")
               for i, p in enumerate(ports)]

        async def load(duration: float, offset: int) -> list[tuple[array[int],
                                                                  list[float], float]]:
            return await asyncio.gather(*(
                drive(p, reqs[offset:], concurrency=args.concurrency // replicas,
                      duration=duration) for p, (reqs, _) in zip(ports, per, strict=True)))

        warm = uvloop.run(load(2.0, args.max_requests // 2))  # on ids not counted below
        warmed = sum(1 for st, _, _ in warm for s in st if s == 202)
        while buffered(urls):
            time.sleep(0.2)
        started = time.perf_counter()
        results = uvloop.run(load(args.duration, 0))
        answered = time.perf_counter()
        while buffered(urls):
            time.sleep(0.05)
        drained = time.perf_counter()
        accepted = {event_id(CONNECTOR, ids[i]) for (st, _, _), (_, ids) in
                    zip(results, per, strict=True) for i, s in enumerate(st) if s == 202}
        latencies = sorted(x for _, lat, _ in results for x in lat)
        on_topic = uvloop.run(topic_ids(bootstrap, topic, len(accepted) + warmed))
        return {"answered_per_s": len(accepted) / (answered - started),
                "sustained_per_s": len(accepted) / (drained - started),
                "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
                "accepted": len(accepted), "missing": len(accepted - on_topic)}
    finally:
        for proc in procs:
            stop(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--payload", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-requests", type=int, default=200_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gateway-replicas-"))
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    kafka = None if bootstrap else LocalKafka()
    if kafka is not None:
        bootstrap = kafka.start()
    assert bootstrap is not None
    redis = LocalRedis(work / "redis").start()
    print(f"# {os.cpu_count()} cores; {args.duration:.0f}s runs; {args.rounds} rounds;"
          f" concurrency {args.concurrency}; logs in {work}", flush=True)
    targets = [("one-node", 1, None), ("one-replica-redis", 1, redis.url),
               ("two-replicas-redis", 2, redis.url)]
    found: dict[str, list[dict[str, float]]] = {t[0]: [] for t in targets}
    try:
        for _ in range(args.rounds):
            for label, replicas, url in targets:
                found[label].append(r := run(label, replicas, url, bootstrap, work, args))
                print(f"{label:<20} sustained {r['sustained_per_s']:>7.0f}/s  answered"
                      f" {r['answered_per_s']:>7.0f}/s  p99 {r['p99_ms']:>7.1f} ms"
                      f"  accepted {r['accepted']:.0f}, missing {r['missing']:.0f}",
                      flush=True)
    finally:
        redis.stop()
        if kafka is not None:
            kafka.close()
    for label, runs in found.items():
        print(f"median {label:<20} sustained"
              f" {statistics.median(r['sustained_per_s'] for r in runs):>7.0f}/s,"
              f" missing {sum(r['missing'] for r in runs):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
