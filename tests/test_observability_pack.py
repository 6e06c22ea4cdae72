"""The observability pack under deploy/ and docs/metrics.md against what a running
gateway exports: every metric exported is documented, and every metric the alert rules
and the dashboard use is exported."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import yaml

from tests.helpers import ROOT, base_config, github_headers, thread_server, write_config

NAME = re.compile(r"\bgateway_[a-z_]+")


def exported(tmp_path: Path) -> set[str]:
    """Every metric family a gateway with a governed connector exports."""
    cfg = base_config("127.0.0.1:1", tmp_path / "data", "events.{source}",
                      certification={"window_seconds": 2, "measure_seconds": 2,
                                     "evaluate_seconds": 0.2})
    cfg["governance"] = {"hash_key": "observability-pack-hash-key-0123456789"}
    cfg["connectors"] = {"gh": {"type": "github", "config": {"secret": "obs-secret-value-1"},
                                "governance": {"slo": {"freshness_minutes": 5},
                                               "schemas": {"push": {"type": "object"}}}}}
    with thread_server(write_config(tmp_path / "g.yaml", cfg)) as server:
        body = b'{"ref": "main"}'
        httpx.post(f"{server.url}/webhooks/gh", content=body,
                   headers=github_headers(body, "obs-secret-value-1", event="push"))
        httpx.post(f"{server.url}/webhooks/gh", content=body, headers=github_headers(body, "x"))
        time.sleep(2.5)  # a certification evaluation: the SLO gauges
        text = httpx.get(f"{server.url}/metrics").text
    return {line.split()[2] for line in text.splitlines() if line.startswith("# HELP")}


def used(text: str) -> set[str]:
    """Metric names in PromQL, histogram series mapped to their family."""
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in NAME.findall(text)}


def test_every_metric_is_documented_and_every_one_used_is_exported(tmp_path: Path) -> None:
    names = exported(tmp_path)
    doc = (ROOT / "docs" / "metrics.md").read_text()
    documented = set(re.findall(r"^\| `(gateway_[a-z_]+)` \|", doc, re.M))
    assert names - documented == set(), "exported but not in docs/metrics.md"
    assert documented - names == set(), "in docs/metrics.md but not exported"

    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yaml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    assert {"GatewayRelayLag", "GatewayOldestBufferedEvent", "GatewayRejectRatio",
            "GatewayPollerStale", "GatewayBufferFilling",
            "GatewayAuditWriteErrors"} <= {a["alert"] for a in alerts}
    in_rules = set().union(*(used(a["expr"]) for a in alerts))
    assert in_rules - names == set(), "alert rules use metrics the gateway does not export"

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "event-gateway.json").read_text())
    in_dashboard = set().union(*(used(t["expr"]) for p in dashboard["panels"]
                                 for t in p["targets"]))
    assert in_dashboard - names == set(), "the dashboard uses metrics not exported"
    assert len(dashboard["panels"]) >= 12
