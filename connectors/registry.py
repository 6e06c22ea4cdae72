"""Connector discovery through entry points.

A connector type is found by the ``type`` name in config; unknown names fail at startup
listing what is available (see ``gateway.config``). Two entry-point groups:

    gateway.connectors        one connector class per name
    gateway.connector_tables  a mapping of names to connector classes (a table of presets)

A name a class registers itself wins over a table's row of the same name (HubSpot's
class extends its preset); anything else is an ``InvalidConnector`` naming the entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from connectors.base import Connector
from connectors.builtin import BUILTIN
from connectors.definition import Definition, define
from connectors.errors import InvalidConnector

GROUP = "gateway.connectors"
TABLES = "gateway.connector_tables"
OURS = "event-gateway"  # the distribution whose types connectors.builtin describes


def _connector_type(name: str, value: object, where: str) -> type[Connector[Any]]:
    if not (isinstance(value, type) and issubclass(value, Connector)):
        raise InvalidConnector(f"{where}: {name!r} is not a Connector class")
    return value


def available() -> dict[str, type[Connector[Any]]]:
    """Every connector type by name (its definition checked: InvalidConnector else)."""
    return {name: cls for name, (cls, _) in _discover().items()}


def definitions() -> dict[str, Definition]:
    """Every connector type's definition, by name."""
    return {name: definition for name, (_, definition) in _discover().items()}


def _define(name: str, cls: type[Connector[Any]], ep: EntryPoint) -> Definition:
    dist = ep.dist
    version = dist.version if dist is not None else "0"
    ours = dist is not None and dist.metadata["Name"] == OURS
    return define(name, cls, version, BUILTIN.get(name) if ours else None)


@cache
def _discover() -> dict[str, tuple[type[Connector[Any]], Definition]]:
    found: dict[str, tuple[type[Connector[Any]], Definition]] = {}
    for ep in entry_points(group=GROUP):
        cls = _connector_type(ep.name, ep.load(), f"entry point {GROUP}")
        found[ep.name] = cls, _define(ep.name, cls, ep)
    for ep in entry_points(group=TABLES):
        table = ep.load()
        where = f"entry point {TABLES} {ep.name!r}"
        if not isinstance(table, Mapping):
            raise InvalidConnector(f"{where} is not a mapping of names to Connector classes")
        for name, value in table.items():
            if str(name) not in found:
                cls = _connector_type(str(name), value, where)
                found[str(name)] = cls, _define(str(name), cls, ep)
    return found
