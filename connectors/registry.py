"""Connector discovery through the ``gateway.connectors`` entry-point group.

A connector is found by the ``type`` name in config; unknown names fail at startup
listing what is available (see ``gateway.config``).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from connectors.base import Connector

GROUP = "gateway.connectors"


@cache
def available() -> dict[str, type[Connector]]:
    found: dict[str, type[Connector]] = {}
    for ep in entry_points(group=GROUP):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Connector)):
            raise TypeError(f"entry point {ep.name!r} in {GROUP} is not a Connector class")
        found[ep.name] = cls
    return found
