"""Where the time goes (issue 18): ``gateway run`` (one worker, its relay) under full
load, sampled by py-spy (PyPI; a dev dependency) across the process tree.

    .venv/bin/python -m bench.profile [--seconds 8] [--gil] [--out profile.txt]
                                      [--threads]

``--gil`` counts only samples holding the GIL (Python's CPU, not waits). Prints the
functions by own samples and a few stages of the request path by inclusive samples;
``--out`` keeps the collapsed stacks (flamegraph input). ``--threads`` also prints every
thread's CPU (user, system) and run-queue wait per accepted event, from /proc over a
load of its own before the profiled one, drain included (the main thread of each process
is its event loop).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from bench.run import (
    WARM_UP,
    build_requests,
    drive,
    gateway_config,
    spawn,
    stop,
    wait_drained,
    wait_http,
)
from bench.sustained import role, thread_ticks, tree
from devtools.localkafka import LocalKafka, free_port

STAGES = ["Gateway.serve", "LimitedProtocol.data_received", "Pipeline.webhook",
          "Pipeline._admit", "HmacScheme.verify", "Pipeline.record", "Records.build",
          "auditor", "DeliveryStore.record", "Outbox.submit", "_answer",
          "RequestResponseCycle.send", "Outbox._group_commit", "DeliveryStore._insert",
          "Relay._publish", "unpack"]


def summarize(raw: str, most: int = 15) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        own[frames[-1]] += n
        for name in {re.sub(r" \(.*\)$", "", f) for f in frames}:
            inclusive[name] += n
    out = [f"{total} samples", "own:"]
    out += [f"  {100 * n / total:5.1f}%  {f[:100]}" for f, n in own.most_common(most)]
    out.append("inclusive:")
    out += [f"  {100 * inclusive[s] / total:5.1f}%  {s}" for s in STAGES]
    return "\n".join(out)


def thread_times(root: int) -> dict[tuple[int, int], tuple[int, int, int]]:
    """Per (pid, tid) under ``root``: user and system ticks, nanoseconds spent waiting
    on a run queue."""
    out: dict[tuple[int, int], tuple[int, int, int]] = {}
    for pid in tree(root):
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                user, system = thread_ticks(pid, int(tid))
                sched = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
                out[(pid, int(tid))] = (user, system, int(sched[1]))
        except OSError:
            continue
    return out


def thread_table(before: dict[tuple[int, int], tuple[int, int, int]],
                 after: dict[tuple[int, int], tuple[int, int, int]], events: int) -> str:
    tick = 1e6 / os.sysconf("SC_CLK_TCK") / max(events, 1)
    rows = []
    for (pid, tid), (user, system, wait) in after.items():
        u0, s0, w0 = before.get((pid, tid), (0, 0, 0))
        name = f"{role(pid)} {pid} {'main' if pid == tid else f'thread {tid}'}"
        rows.append(((user - u0 + system - s0) * tick, (user - u0) * tick,
                     (system - s0) * tick, (wait - w0) / 1e3 / max(events, 1), name))
    rows.sort(reverse=True)
    out = ["per accepted event: CPU (user + system) µs, run-queue wait µs, thread"]
    out += [f"  {cpu:6.1f} ({u:5.1f} + {s:5.1f})  wait {w:5.1f}  {name}"
            for cpu, u, s, w, name in rows if cpu >= 0.5]
    out.append(f"  {sum(r[0] for r in rows):6.1f} in all")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--gil", action="store_true")
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--native", action="store_true",
                        help="C frames too (pauses the processes to sample them)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--threads", action="store_true",
                        help="also CPU and run-queue wait per thread, per accepted event")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gateway-profile-"))
    raw = args.out or work / "stacks.txt"
    kafka = LocalKafka()
    bootstrap = kafka.start()
    port = free_port()
    config = gateway_config(work / "gw", bootstrap, f"bench.profile.{int(time.time())}")
    proc = spawn([sys.executable, "-m", "gateway", "run", "--config", str(config), "--port",
                  str(port)], work / "gateway.log", {"KAFKA_BOOTSTRAP_SERVERS": bootstrap})
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        warm, _ = build_requests(150_000, port, 1024, "warm")
        uvloop.run(drive(port, warm, concurrency=64, duration=WARM_UP))
        wait_drained(f"http://127.0.0.1:{port}")
        if args.threads:  # a load of its own, without py-spy taking a core
            reqs, _ = build_requests(150_000, port, 1024, "threads")
            before = thread_times(proc.pid)
            statuses, _, secs = uvloop.run(drive(port, reqs, concurrency=64,
                                                 duration=args.seconds))
            wait_drained(f"http://127.0.0.1:{port}")
            accepted = sum(1 for s in statuses if s == 202)
            print(f"# {accepted} accepted in {secs:.1f} s, drained; no profiler")
            print(thread_table(before, thread_times(proc.pid), accepted))
        reqs, _ = build_requests(150_000, port, 1024, "profiled")
        spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record",
                                "--pid", str(proc.pid), "--subprocesses", "--rate", str(args.rate),
                                "--duration", str(args.seconds), "--format", "raw",
                                "--output", str(raw),
                                *([] if args.native else ["--nonblocking"]),
                                *(["--gil"] if args.gil else []),
                                *(["--native"] if args.native else [])],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        statuses, _, secs = uvloop.run(drive(port, reqs, concurrency=64,
                                             duration=args.seconds + 1))
        spy.wait()
        print(f"# {sum(1 for s in statuses if s == 202)} accepted in {secs:.1f} s;"
              f" {'GIL-holding samples only' if args.gil else 'all samples'}")
        print(summarize(raw.read_text()))
    finally:
        stop(proc)
        kafka.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
