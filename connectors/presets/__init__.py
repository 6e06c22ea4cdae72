"""Provider presets: one row of data per provider, one connector class built from each.

    engine.py             Preset (the data) and PresetConnector (what runs it)
    handshakes.py         providers' handshakes as small strategies a preset names
    table.py              the presets and where each one's test vectors come from
    standard_webhooks.py  Standard Webhooks, whose v1a signatures need more than a row

``BY_NAME`` maps each preset's name to its connector type; the ``gateway.connector_tables``
entry point registers the whole table, so that ``type: stripe`` works in config.
"""

from __future__ import annotations

from connectors.presets.engine import Preset, PresetConnector, connector_class
from connectors.presets.standard_webhooks import StandardWebhooksConnector
from connectors.presets.table import PRESETS
from connectors.presets.vectors import DOCUMENTED_ONLY, VECTORS

__all__ = ["BY_NAME", "DOCUMENTED_ONLY", "PRESETS", "VECTORS", "Preset", "PresetConnector"]

BY_NAME: dict[str, type[PresetConnector]] = {
    p.name: connector_class(p) for p in PRESETS if p.name != "standard_webhooks"}
BY_NAME["standard_webhooks"] = StandardWebhooksConnector
