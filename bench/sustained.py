"""What matters (issue 18): events that reached Kafka per second, the gateway against
the references, in one invocation, alternated over several rounds (medians).

    .venv/bin/python -m bench.sustained [--rounds 3] [--duration 8] [--concurrency 64]
                                        [--workers 1 2] [--only ...] [--half] [--rate R]

Targets, each started fresh every round with unique delivery ids (no round measures the
duplicate path by accident):

- ``bare``: a Starlette app that only reads the body (no Kafka: its answer rate is the
  ceiling of an ASGI app here);
- ``naive``: the handler a team writes in an afternoon (``bench/naive_app.py``: HMAC,
  ``send_and_wait`` with acks=all, idempotence, linger 5 ms; nothing durable locally);
- ``floor``: the least a CPython gateway can do and still keep the delivery promise
  (``bench/floor_app.py``: HMAC, a group commit with fsync and the delivery id claimed in
  it, produced from the same process; no envelope, audit, delivery store or relay):
  what the targets ask of CPython here;
- ``gateway xN``: ``gateway run`` with N workers, fsync before 2xx, deduplication and the
  audit trail on.

Per run: the **sustained rate** (2xx answers divided by the time until the last of them
was on Kafka: the gateway keeps running until its buffer is empty), the answer rate,
p50/p99 latency, **CPU microseconds per accepted event** for the whole process tree
(workers, relay, pollers; read from /proc before and after, drain included) and the ids
missing on the topic. Then each Kafka target at half its median peak, for p99, alternated
over ``--half-rounds`` rounds (default: as many as ``--rounds``; the median p99 is the
figure: one run's p99 at half peak moves by a factor of three here with the scheduling).
Results also go to ``bench/results/sustained.json``.

``--rate R`` drives every target at R requests per second instead of full load (and
skips the half-peak runs): what each costs per request at a rate all of them keep up
with. Each run also shows the CPU of the HTTP processes' event loops alone (``loop``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import uvloop

from bench.run import (
    CONNECTOR,
    ROOT,
    WARM_UP,
    build_requests,
    drive,
    gateway_config,
    spawn,
    stop,
    summarize,
    topic_ids,
    wait_drained,
    wait_http,
)
from connectors.request import event_id
from devtools.localkafka import LocalKafka, free_port


def tree(pid: int) -> list[int]:
    """``pid`` and every process under it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def role(pid: int) -> str:
    """A process's part: ``poll`` (the relay and pollers) or ``http`` (the rest)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "http"
    return "relay" if b"poll" in argv or b"relay" in argv else "http"


def thread_ticks(pid: int, tid: int) -> tuple[int, int]:
    """User and system clock ticks a thread has used so far (OSError: it is gone)."""
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def cpu_seconds(pids: list[int]) -> dict[str, float]:
    """CPU seconds used so far by ``pids`` (every thread), by ``role``."""
    ticks: dict[str, int] = {}
    for pid in pids:
        part = role(pid)
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                ticks[part] = ticks.get(part, 0) + sum(thread_ticks(pid, int(tid)))
        except OSError:
            continue
    return {part: n / os.sysconf("SC_CLK_TCK") for part, n in ticks.items()}


def loop_seconds(pids: list[int]) -> float:
    """CPU seconds so far of the HTTP processes' main threads: each worker's event loop.
    ``pids`` as ``tree`` gives them, the started process first: with one worker it is the
    worker; with more, the supervisor, left out."""
    http = [pid for pid in pids if role(pid) == "http"]
    ticks = 0
    for pid in http[1:] if len(http) > 1 else http:
        with suppress(OSError):
            ticks += sum(thread_ticks(pid, pid))
    return ticks / os.sysconf("SC_CLK_TCK")


class Target:
    def __init__(self, name: str, kind: str, workers: int, bootstrap: str, work: Path,
                 args: argparse.Namespace) -> None:
        self.name, self.kind, self.workers, self.args = name, kind, workers, args
        self.bootstrap = bootstrap
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.topic = f"bench.sus.{kind}{workers}.{int(time.time() * 1000)}"
        log = work / f"{kind}{workers}-{self.port}.log"
        env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "BENCH_TOPIC": self.topic,
               "BENCH_DATA": str(work / f"{kind}-{self.port}")}
        if kind == "gateway":
            config = gateway_config(work / f"gw-{self.port}", bootstrap, self.topic)
            cmd = [sys.executable, "-m", "gateway", "run", "--config", str(config),
                   "--port", str(self.port), "--workers", str(workers)]
        else:
            cmd = [sys.executable, "-m", "uvicorn", f"bench.{kind}_app:app", "--port",
                   str(self.port), "--workers", str(workers), "--loop", "uvloop",
                   "--http", "httptools", "--log-level", "warning", "--no-access-log"]
        self.proc = spawn(cmd, log, env)
        wait_http(self.url + "/healthz", self.proc)

    def run(self, tag: str, rate: float | None = None) -> dict[str, Any]:
        """One measured run: warm-up, the load, the drain; the figures."""
        args = self.args
        warm, _ = build_requests(args.max_requests, self.port, args.payload, f"w{tag}")
        warm_st, _, _ = uvloop.run(drive(self.port, warm, concurrency=args.concurrency,
                                         duration=WARM_UP))
        warmed = sum(1 for s in warm_st if 200 <= s < 300)
        self._drained()
        reqs, deliveries = build_requests(args.max_requests, self.port, args.payload, tag)
        pids = tree(self.proc.pid)
        cpu0, loop0, t0 = cpu_seconds(pids), loop_seconds(pids), time.perf_counter()
        st, lat, secs = uvloop.run(drive(self.port, reqs, concurrency=args.concurrency,
                                         duration=args.duration, rate=rate))
        self._drained()
        until_kafka = time.perf_counter() - t0
        pids = tree(self.proc.pid)
        cpu1 = cpu_seconds(pids)
        loop = loop_seconds(pids) - loop0
        parts = {part: cpu1[part] - cpu0.get(part, 0.0) for part in cpu1}
        cpu = sum(parts.values())
        run = summarize(self.name, st, lat, secs)
        accepted = {event_id(CONNECTOR, deliveries[i]) for i, s in enumerate(st)
                    if 200 <= s < 300}
        missing = None
        if self.kind != "bare":
            found = uvloop.run(topic_ids(self.bootstrap, self.topic,
                                         len(accepted) + warmed, wait=60))
            missing = len(accepted - found)
        return {"name": self.name, "answered_per_s": run.rate,
                "sustained_per_s": None if self.kind == "bare" else round(
                    len(accepted) / until_kafka, 1),
                "p50_ms": run.p50_ms, "p99_ms": run.p99_ms, "accepted": len(accepted),
                "cpu_us_per_event": round(cpu / max(len(accepted), 1) * 1e6, 1),
                "cpu_us_by_part": {part: round(c / max(len(accepted), 1) * 1e6, 1)
                                   for part, c in sorted(parts.items())},
                "loop_us_per_event": round(loop / max(len(accepted), 1) * 1e6, 1),
                "missing": missing}

    def _drained(self) -> None:
        if self.kind in ("gateway", "floor"):
            wait_drained(self.url)

    def stop(self) -> None:
        stop(self.proc)


def show(r: dict[str, Any]) -> None:
    sustained = r["sustained_per_s"]
    print(f"{r['name']:<16} sustained {sustained if sustained is not None else '-':>8}/s"
          f"  answered {r['answered_per_s']:>8.0f}/s  p50 {r['p50_ms']:>6.2f} ms"
          f"  p99 {r['p99_ms']:>6.2f} ms  CPU {r['cpu_us_per_event']:>6.1f} µs/event"
          f" ({', '.join(f'{k} {v:.0f}' for k, v in r['cpu_us_by_part'].items())};"
          f" loop {r['loop_us_per_event']:.0f})"
          f"  missing {r['missing'] if r['missing'] is not None else '-'}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--payload", type=int, default=1024)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--max-requests", type=int, default=150_000)
    parser.add_argument("--only", nargs="+", choices=["bare", "naive", "floor", "gateway"],
                        help="measure only these targets (no ratios; for iterating)")
    parser.add_argument("--half", action="store_true",
                        help="with --only: the half-peak runs too")
    parser.add_argument("--half-rounds", type=int,
                        help="rounds of half-peak runs (default: --rounds)")
    parser.add_argument("--rate", type=float,
                        help="requests per second for every run (default: full load)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gateway-sustained-"))
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    kafka = None if bootstrap else LocalKafka()
    if kafka is not None:
        bootstrap = kafka.start()
    assert bootstrap is not None
    print(f"# {os.cpu_count()} cores; {args.rounds} rounds of {args.duration:.0f}s;"
          f" concurrency {args.concurrency}; body {args.payload} B; logs in {work}",
          flush=True)
    kinds = [("bare", "bare", 1), ("naive", "naive", 1), ("floor", "floor", 1),
             *((f"gateway x{n}", "gateway", n) for n in args.workers)]
    if args.only:
        kinds = [k for k in kinds if k[1] in args.only]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in kinds}
    try:
        for rnd in range(args.rounds):
            for name, kind, workers in kinds:
                target = Target(name, kind, workers, bootstrap, work, args)
                try:
                    runs[name].append(target.run(f"r{rnd}-{kind}{workers}", rate=args.rate))
                finally:
                    target.stop()
                show(runs[name][-1])
        medians = {name: statistics.median(
            r["sustained_per_s"] or r["answered_per_s"] for r in rs)
            for name, rs in runs.items()}
        half: dict[str, list[dict[str, Any]]] = {}
        halves = [] if args.rate or (args.only and not args.half) else [
            k for k in kinds if k[1] != "bare"]
        for rnd in range(args.rounds if args.half_rounds is None else args.half_rounds):
            for name, kind, workers in halves:
                target = Target(name, kind, workers, bootstrap, work, args)
                try:
                    run = target.run(f"half{rnd}-{kind}{workers}", rate=medians[name] / 2)
                finally:
                    target.stop()
                run["name"] = f"{name} @half"
                half.setdefault(name, []).append(run)
                show(run)
    finally:
        if kafka is not None:
            kafka.close()
    print(f"median sustained: {', '.join(f'{n} {m:.0f}/s' for n, m in medians.items())}")
    if half:
        print("median p99 at half peak: " + ", ".join(
            f"{n} {statistics.median(r['p99_ms'] for r in rs):.1f} ms"
            for n, rs in half.items()))
    if args.only or args.rate:
        return 0
    for name in ("gateway x1", "floor"):  # each against the targets
        print(f"{name} / naive {medians[name] / medians['naive']:.2f};"
              f" / bare {medians[name] / medians['bare']:.2f}; CPU"
              f" {statistics.median(r['cpu_us_per_event'] for r in runs[name]):.0f}"
              f" µs/event; p99 at half peak (median)"
              f" {statistics.median(r['p99_ms'] for r in half[name]):.1f} ms")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "sustained.json").write_text(json.dumps({"args": vars(args), "runs": runs,
                                                    "half": half, "medians": medians},
                                                   indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
