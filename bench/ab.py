"""A/B: the gateway at two (or more) git revisions, alternated against one broker.

    .venv/bin/python -m bench.ab HEAD~1 HEAD [--rounds 4] [--duration 6] [--concurrency 64]
                                             [--workers 1] [--rate R]

Each revision is checked out once in a temporary git worktree; then, round after round,
each revision's ``gateway run`` (``--workers`` workers) is started, warmed up, driven at
full load like ``bench.run`` drives it, and stopped. Alternating the revisions makes the
machine's drift hit them alike, which a before/after pair of single runs cannot.
``WORKTREE`` (the literal word) stands for the current working tree, uncommitted changes
included. Prints each run, then per revision the median rate, p99 and CPU per request:
every process of the tree (workers, relay), until the buffer is drained, and of the
workers' event loops alone (their main threads: the thread every request waits for).
``--rate R`` drives R requests per second instead of full load: the CPU per request at a
fixed rate does not move with the machine's drift as a peak rate does, so it shows
changes of a few per cent that the peak rate's noise hides.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import uvloop

from bench.run import (
    ROOT,
    WARM_UP,
    build_requests,
    drive,
    gateway_config,
    stop,
    summarize,
    wait_drained,
    wait_http,
)
from bench.sustained import cpu_seconds, loop_seconds
from bench.sustained import tree as process_tree
from devtools.localkafka import LocalKafka, free_port


def checkout(rev: str, work: Path) -> Path:
    if rev == "WORKTREE":
        return ROOT
    path = work / f"rev-{len(list(work.glob('rev-*')))}"
    subprocess.run(["git", "worktree", "add", "--detach", str(path), rev], cwd=ROOT,
                   check=True, capture_output=True)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revisions", nargs="+")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--payload", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rate", type=float, help="requests per second (default: full load)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gateway-ab-"))
    trees = {rev: checkout(rev, work) for rev in args.revisions}
    kafka = LocalKafka()
    bootstrap = kafka.start()
    results: dict[str, list[tuple[float, float, float, float]]] = {rev: [] for rev in trees}
    try:
        for round_no in range(args.rounds):
            for rev, tree in trees.items():
                port = free_port()
                config = gateway_config(work / f"run-{round_no}-{len(results[rev])}-{port}",
                                        bootstrap, f"ab.{port}")
                proc = subprocess.Popen(
                    [sys.executable, "-m", "gateway", "run", "--config", str(config),
                     "--port", str(port), "--workers", str(args.workers)],
                    cwd=tree, start_new_session=True,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                         "PYTHONPATH": str(tree)})
                try:
                    url = f"http://127.0.0.1:{port}"
                    wait_http(url + "/healthz", proc)
                    warm, _ = build_requests(100_000, port, args.payload, "warm")
                    uvloop.run(drive(port, warm, concurrency=args.concurrency,
                                     duration=WARM_UP))
                    wait_drained(url)
                    reqs, _ = build_requests(100_000, port, args.payload, "peak")
                    pids = process_tree(proc.pid)
                    before, loop_before = sum(cpu_seconds(pids).values()), loop_seconds(pids)
                    st, lat, secs = uvloop.run(drive(port, reqs, concurrency=args.concurrency,
                                                     duration=args.duration, rate=args.rate))
                    wait_drained(url)  # the relay's catching up must not overlap the next run
                    pids = process_tree(proc.pid)
                    cpu = sum(cpu_seconds(pids).values()) - before
                    loop = loop_seconds(pids) - loop_before
                finally:
                    stop(proc)
                run = summarize(rev, st, lat, secs)
                results[rev].append((run.rate, cpu / max(run.ok, 1) * 1e6, run.p99_ms,
                                     loop / max(run.ok, 1) * 1e6))
                print(f"{rev:<20} {run.rate:>8.0f}/s  {results[rev][-1][1]:>5.0f} us/req"
                      f" (event loop {results[rev][-1][3]:>5.1f})  p99 {run.p99_ms:>6.2f} ms",
                      flush=True)
    finally:
        kafka.close()
        for tree in trees.values():
            if tree != ROOT:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                               capture_output=True)
    for rev, runs in results.items():
        print(f"== {rev}: median {statistics.median(r[0] for r in runs):.0f}/s, p99"
              f" {statistics.median(r[2] for r in runs):.2f} ms, CPU per request"
              f" {statistics.median(r[1] for r in runs):.0f} us, event loop"
              f" {statistics.median(r[3] for r in runs):.1f} us ({len(runs)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
