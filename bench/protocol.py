"""The HTTP layer's own Python, without sockets (issue 18): the gateway's uvicorn
protocol (``gateway.server.LimitedProtocol``, httptools) fed pre-built webhook requests
over ``--connections`` connections whose transport only counts writes, each answered by
the raw ASGI app of ``bench/raw_app.py`` (reads the body, answers 202 as the gateway
does).

    .venv/bin/python -m bench.protocol [--requests 20000] [--rounds 3]

Prints per round the event loop's CPU per request: parsing, uvicorn's request-response
cycle, the task, the ASGI messages and the answer's bytes, with no system calls. What a
change to the HTTP layer can gain at most is within this figure.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

import uvloop
from uvicorn.server import ServerState

from bench.raw_app import app as raw_app
from bench.run import build_requests
from gateway.config import ServerConfig
from gateway.server import LimitedProtocol, uvicorn_config


class CountingTransport(asyncio.Transport):
    """A connection that keeps nothing: it counts writes and answers what the protocol
    asks of a TCP transport."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.closing = False

    def write(self, data: Any) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(
            name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True


async def measure(args: argparse.Namespace) -> int:
    config = uvicorn_config(raw_app, ServerConfig(), host="127.0.0.1", port=8080)
    config.load()
    state = ServerState()
    requests = build_requests(args.requests, 8080, 1024, f"protocol-{time.time_ns()}")[0]
    per_request: list[float] = []
    for n in range(args.rounds):
        protocols = []
        transports = []
        for _ in range(args.connections):
            protocol = LimitedProtocol(config, state, app_state={})
            transport = CountingTransport()
            protocol.connection_made(transport)
            protocols.append(protocol)
            transports.append(transport)
        began = time.thread_time()
        for i, request in enumerate(requests):
            protocols[i % args.connections].data_received(request)
            if i % args.connections == args.connections - 1:
                # every connection's answer, before its next request
                await asyncio.gather(*state.tasks)
        await asyncio.gather(*state.tasks)
        spent = time.thread_time() - began
        writes = sum(t.writes for t in transports)
        for protocol in protocols:
            protocol.connection_lost(None)
        per_request.append(1e6 * spent / len(requests))
        print(f"round {n + 1}: {per_request[-1]:.1f} µs per request on the event loop"
              f" ({writes / len(requests):.1f} writes per answer)")
    print(f"median: {statistics.median(per_request):.1f} µs per request")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    return uvloop.run(measure(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
