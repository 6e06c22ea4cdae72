"""Parts start after what they need and stop in reverse (gateway/lifecycle.py), in
``gateway run``: the credential store, then the connectors, then the pollers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Connector
from gateway.credentials import Resolver
from gateway.lifecycle import Lifecycle
from gateway.polling import PollRunner
from tests.helpers import base_config, thread_server, write_config


def test_dependency_order_reverse_stop_and_a_failed_start_undone() -> None:
    events: list[str] = []

    def step(what: str, fail: bool = False):  # type: ignore[no-untyped-def]
        async def run() -> None:
            if fail:
                raise RuntimeError(what)
            events.append(what)
        return run

    parts = Lifecycle()
    parts.add("pollers", start=step("start pollers"), stop=step("stop pollers"),
              needs=["connector", "relay"])
    parts.add("connector", start=step("start connector"), stop=step("stop connector"),
              needs=["credentials"])
    parts.add("credentials", stop=step("close credentials"))
    parts.add("relay", start=step("start relay"), stop=step("stop relay"))
    asyncio.run(parts.start())
    assert events.index("start connector") < events.index("start pollers")
    assert events.index("start relay") < events.index("start pollers")
    started = list(events)
    events.clear()
    asyncio.run(parts.stop())
    assert events.index("stop pollers") < events.index("stop connector") < \
        events.index("close credentials")
    assert events.index("stop pollers") < events.index("stop relay")
    assert len(started) == 3

    broken = Lifecycle()
    broken.add("a", start=step("start a"), stop=step("stop a"))
    broken.add("b", start=step("b", fail=True), needs=["a"])
    events.clear()
    with pytest.raises(RuntimeError):
        asyncio.run(broken.start())
    assert events == ["start a", "stop a"]


def test_gateway_run_starts_connectors_before_pollers_and_stops_them_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []

    async def start(self: Connector[Any]) -> None:
        order.append(f"start {self.connector_id}")

    async def aclose(self: Connector[Any]) -> None:
        order.append(f"close {self.connector_id}")

    real_start, real_stop = PollRunner.start, PollRunner.stop

    def runner_start(self: PollRunner) -> None:
        order.append("start pollers")
        real_start(self)

    async def runner_stop(self: PollRunner) -> None:
        order.append("stop pollers")
        await real_stop(self)

    monkeypatch.setattr(Connector, "start", start)
    monkeypatch.setattr(Connector, "aclose", aclose)
    monkeypatch.setattr(PollRunner, "start", runner_start)
    monkeypatch.setattr(PollRunner, "stop", runner_stop)
    monkeypatch.setattr(Resolver, "close", lambda self: order.append("close credentials"))
    cfg = base_config("127.0.0.1:1", tmp_path / "data", "events.{source}")
    cfg["connectors"] = {
        "gh-life": {"type": "github", "config": {"secret": "gh-secret-value-1234"}},
        "items": {"type": "http_poll", "config": {"url": "http://127.0.0.1:9/items",
                                                  "interval_seconds": 3600}}}
    with thread_server(write_config(tmp_path / "g.yaml", cfg)):
        assert {"start gh-life", "start items"} <= set(order)
        assert order.index("start pollers") > max(order.index("start gh-life"),
                                                  order.index("start items"))
    stopping = order[order.index("stop pollers"):]
    assert set(stopping[1:3]) == {"close gh-life", "close items"}
    assert stopping.index("close credentials") > max(stopping.index("close gh-life"),
                                                     stopping.index("close items"))
