"""The webhook path's own Python, without sockets (issue 18): the gateway's ASGI app
called directly, as uvicorn would call it, by ``--concurrency`` tasks on one uvloop, with
the real buffer (group commits, fsync), audit and delivery store on their threads.

    .venv/bin/python -m bench.inproc [--requests 20000] [--rounds 5] [--profile]

Prints per round the rate and the CPU per accepted event of the event-loop thread (the
thread the HTTP server shares; no HTTP parsing, no answer written to a socket, no relay)
and of the whole process (the buffer's, delivery store's and audit's threads too), then
the medians. No HTTP parsing, load generator, broker or relay competes for the two cores,
so what it prints is the request path's own CPU, without the scheduling noise of
``bench.sustained``; the machine still drifts (medians of 51 to 82 µs on the event loop
for one commit within half an hour here), so compare revisions in alternated runs.
``--profile`` adds cProfile's top functions (its own overhead doubles the time; read the
proportions).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

from bench.run import build_requests, gateway_config
from gateway.app import create_app
from gateway.config import load_config

Request = tuple[str, list[tuple[bytes, bytes]], bytes]
App = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]],
                Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


def parsed(raw: bytes) -> Request:
    """A pre-built HTTP request as the ASGI scope's path and headers, and its body."""
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, value = line.split(b": ", 1)
        headers.append((name.lower(), value))
    return lines[0].split(b" ")[1].decode(), headers, body


async def call(app: App, request: Request, statuses: list[int]) -> None:
    path, headers, body = request
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080), "state": {}}
    given = False

    async def receive() -> dict[str, Any]:
        nonlocal given
        if given:  # the app only asks again to learn of a disconnect
            await asyncio.Event().wait()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)


async def drive(app: App, requests: list[Request], concurrency: int) -> list[int]:
    statuses: list[int] = []

    async def one_connection(mine: list[Request]) -> None:
        for request in mine:
            await call(app, request, statuses)

    await asyncio.gather(*(one_connection(requests[i::concurrency])
                           for i in range(concurrency)))
    return statuses


async def measure(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="gateway-inproc-"))
    # The worker of ``gateway run``: the relay runs elsewhere, so no broker is needed.
    app: Any = create_app(load_config(gateway_config(work, "127.0.0.1:9", "bench")),
                          relay_in_process=False)
    lifespan: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = asyncio.Event()

    async def lifespan_send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()
        elif message["type"].endswith("failed"):
            raise SystemExit(f"startup failed: {message}")

    await lifespan.put({"type": "lifespan.startup"})
    running = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"},
                                       "state": {}}, lifespan.get, lifespan_send))
    await started.wait()
    tag = f"inproc-{time.time_ns()}"
    await drive(app, [parsed(r) for r in build_requests(1000, 8080, 1024, tag + "-w")[0]],
                args.concurrency)  # warm: caches, the first commits
    cpu: list[float] = []
    every: list[float] = []  # every thread: the loop, the buffer's, the store's, audit's
    for n in range(args.rounds):
        requests = [parsed(r) for r in
                    build_requests(args.requests, 8080, 1024, f"{tag}-{n}")[0]]
        profile = cProfile.Profile() if args.profile and n == args.rounds - 1 else None
        c0, p0, t0 = time.thread_time(), time.process_time(), time.perf_counter()
        if profile is not None:
            profile.enable()
        statuses = await drive(app, requests, args.concurrency)
        if profile is not None:
            profile.disable()
        c1, p1, t1 = time.thread_time(), time.process_time(), time.perf_counter()
        accepted = statuses.count(202)
        if accepted != len(requests):
            print(f"round {n + 1}: {len(requests) - accepted} not accepted", file=sys.stderr)
            return 1
        cpu.append(1e6 * (c1 - c0) / accepted)
        every.append(1e6 * (p1 - p0) / accepted)
        print(f"round {n + 1}: {accepted / (t1 - t0):.0f} accepted/s; CPU per event: event"
              f" loop {cpu[-1]:.1f} µs, process {every[-1]:.1f} µs"
              f"{' (profiled)' if profile else ''}")
        if profile is not None:
            stats = pstats.Stats(profile)
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumulative").print_stats(40)
    kept = slice(0, -1) if args.profile and len(cpu) > 1 else slice(None)
    print(f"median CPU per event: event loop {statistics.median(cpu[kept]):.1f} µs,"
          f" process {statistics.median(every[kept]):.1f} µs")
    await lifespan.put({"type": "lifespan.shutdown"})
    await running
    shutil.rmtree(work)  # a buffer of some hundred megabytes after five rounds
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the last round (left out of the median)")
    return uvloop.run(measure(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
