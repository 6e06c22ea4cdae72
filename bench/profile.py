"""Where the time goes (issue 18): ``gateway run`` (one worker, its relay) under full
load, sampled by py-spy (PyPI; a dev dependency) across the process tree.

    .venv/bin/python -m bench.profile [--seconds 8] [--gil] [--out profile.txt]

``--gil`` counts only samples holding the GIL (Python's CPU, not waits). Prints the
functions by own samples and a few stages of the request path by inclusive samples;
``--out`` keeps the collapsed stacks (flamegraph input).
"""

from __future__ import annotations

import argparse
import collections
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--gil", action="store_true")
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--native", action="store_true",
                        help="C frames too (pauses the processes to sample them)")
    parser.add_argument("--out", type=Path)
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
