"""Starting and stopping in dependency order.

Each part of a process names the parts it needs; ``start`` runs every part after what it
needs (``graphlib``'s order: a cycle is a bug, raised at once), ``stop`` runs the stops
of the started parts in the reverse order. A part that fails to start stops the ones
already started, then the error goes on; a part that fails to stop is logged and the
others still stop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from graphlib import TopologicalSorter

import structlog

log = structlog.get_logger(__name__)

Step = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Part:
    name: str
    start: Step | None
    stop: Step | None
    needs: tuple[str, ...]


class Lifecycle:
    def __init__(self) -> None:
        self.parts: dict[str, Part] = {}
        self.started: list[str] = []

    def add(self, name: str, *, start: Step | None = None, stop: Step | None = None,
            needs: Iterable[str] = ()) -> None:
        assert name not in self.parts, name
        self.parts[name] = Part(name, start, stop, tuple(needs))

    def order(self) -> list[str]:
        graph = {name: [n for n in part.needs if n in self.parts]
                 for name, part in self.parts.items()}
        return list(TopologicalSorter(graph).static_order())

    async def start(self) -> None:
        for name in self.order():
            part = self.parts[name]
            try:
                if part.start is not None:
                    await part.start()
            except BaseException:
                await self.stop()
                raise
            self.started.append(name)

    async def stop(self) -> None:
        while self.started:
            part = self.parts[self.started.pop()]
            if part.stop is None:
                continue
            try:
                await part.stop()
            except Exception:
                log.exception("stop_failed", part=part.name)
