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
from importlib.metadata import entry_points
from typing import Any

from connectors.base import Connector
from connectors.errors import InvalidConnector

GROUP = "gateway.connectors"
TABLES = "gateway.connector_tables"


def _connector_type(name: str, value: object, where: str) -> type[Connector[Any]]:
    if not (isinstance(value, type) and issubclass(value, Connector)):
        raise InvalidConnector(f"{where}: {name!r} is not a Connector class")
    return value


@cache
def available() -> dict[str, type[Connector[Any]]]:
    found: dict[str, type[Connector[Any]]] = {}
    for ep in entry_points(group=GROUP):
        found[ep.name] = _connector_type(ep.name, ep.load(), f"entry point {GROUP}")
    for ep in entry_points(group=TABLES):
        table = ep.load()
        where = f"entry point {TABLES} {ep.name!r}"
        if not isinstance(table, Mapping):
            raise InvalidConnector(f"{where} is not a mapping of names to Connector classes")
        for name, cls in table.items():
            found.setdefault(str(name), _connector_type(str(name), cls, where))
    return found
