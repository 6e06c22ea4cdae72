"""Connector SLOs measured from real traffic, and certification driven with a window of
seconds: pending → monitoring → certified → failed → certified, surviving a restart, shown
by /readyz, /metrics and ``gateway connectors status``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.certification import advance, breaches, health, measure, read_state
from gateway.governance import Slo
from tests.helpers import ROOT, base_config, github_headers, thread_server, write_config

SECRET = "certification-secret"
WINDOW = 2.0


def test_measures() -> None:
    window = {"req:accepted": 6, "req:rejected": 2, "req:failed": 1, "req:duplicate": 1,
              "events": 6, "bytes": 600, "rejected:invalid_signature": 2,
              "checks:amount": 6, "nulls:amount": 3, "violations": 1}
    m = measure(window, newest=100.0, since=0.0, now=160.0, poller=False)
    assert m["requests"] == 10
    assert m["availability_percent"] == 90.0
    assert m["error_rate_percent"] == 30.0  # rejected + failed (+ dead letters)
    assert m["freshness_minutes"] == 1.0
    assert m["rejected"] == {"invalid_signature": 2}
    assert m["null_rate_percent"] == {"amount": 50.0}
    assert breaches(Slo(error_rate_percent=25, availability_percent=95,
                        freshness_minutes=2), m) == ["availability_percent",
                                                      "error_rate_percent"]
    idle = measure({}, newest=None, since=0.0, now=60.0, poller=False)
    assert idle["availability_percent"] is None  # nothing to measure: no breach
    assert breaches(Slo(error_rate_percent=1, freshness_minutes=0.5), idle) == [
        "freshness_minutes"]  # but silence is one
    polled = measure({"polls": 4, "polls_failed": 1, "events": 9, "dead_lettered": 1},
                     newest=None, since=0.0, now=1.0, poller=True)
    assert (polled["availability_percent"], polled["error_rate_percent"]) == (75.0, 10.0)


def test_health() -> None:
    assert health({}, None)["status"] == "healthy"
    assert health({"req:accepted": 9, "req:rejected": 1, "rejected:invalid_signature": 1},
                  None)["status"] == "healthy"  # one forger is not a problem
    degraded = health({"req:accepted": 8, "req:rejected": 2,
                       "rejected:invalid_signature": 2}, None)
    assert degraded == {"status": "degraded",
                        "reason": "2 of 10 deliveries failed verification"}
    wrong_secret = health({"req:accepted": 1, "req:rejected": 6,
                           "rejected:invalid_signature": 6}, None)
    assert wrong_secret["status"] == "unhealthy"
    assert "6 of 7 deliveries failed verification" in wrong_secret["reason"]
    assert health({"req:accepted": 5, "req:failed": 1, "failed:unavailable": 1},
                  None)["status"] == "degraded"  # a key or certificate fetch failed
    assert health({"req:failed": 3, "failed:unavailable": 3}, None)["status"] == "unhealthy"
    assert health({"req:rejected": 5, "rejected:rate_limited": 5}, None)["status"] == (
        "healthy")  # not a verification failure
    assert health({}, {"last_success": 10.0, "last_error_at": 20.0,
                       "last_error": "PollError: 500"}) == {
        "status": "unhealthy", "reason": "the last poll failed: PollError: 500"}
    assert health({"polls_failed": 1}, {"last_success": 30.0, "last_error_at": 20.0}
                  )["status"] == "degraded"
    assert health({"polls": 3}, {"last_success": 30.0})["status"] == "healthy"


def test_the_state_machine() -> None:
    s = advance({}, active=False, breached=[], now=0, window=10)
    assert s["state"] == "pending"
    s = advance(s, active=True, breached=[], now=1, window=10)
    assert s["state"] == "monitoring"
    s = advance(s, active=True, breached=[], now=10, window=10)
    assert s["state"] == "monitoring"  # 9 s clean
    s = advance(s, active=True, breached=[], now=11, window=10)
    assert s["state"] == "certified"
    s = advance(s, active=True, breached=["error_rate_percent"], now=12, window=10)
    assert s["state"] == "failed"
    s = advance(s, active=True, breached=[], now=13, window=10)
    s = advance(s, active=True, breached=["error_rate_percent"], now=14, window=10)
    s = advance(s, active=True, breached=[], now=15, window=10)  # the clean window restarts
    s = advance(s, active=True, breached=[], now=24, window=10)
    assert s["state"] == "failed"
    s = advance(s, active=True, breached=[], now=25, window=10)
    assert s["state"] == "certified"
    assert [h["to"] for h in s["history"]] == ["monitoring", "certified", "failed",
                                               "certified"]


def deliver(url: str, body: bytes, *, good: bool = True) -> int:
    return httpx.post(f"{url}/webhooks/cert-gh", content=body, headers=github_headers(
        body, SECRET if good else "wrong", event="push")).status_code


def wait_state(url: str, cid: str, state: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        view = httpx.get(f"{url}/readyz").json()["connectors"].get(cid, {})
        if view.get("certification", {}).get("state") == state:
            return view
        time.sleep(0.2)
    raise AssertionError(f"{cid} never became {state}: {view}")


@pytest.mark.kafka
def test_certification_follows_the_slo_and_survives_a_restart(
        kafka_bootstrap: str, data_dir: Path, topic_prefix: str, tmp_path: Path) -> None:
    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.{{source}}",
                      certification={"window_seconds": WINDOW, "measure_seconds": WINDOW,
                                     "evaluate_seconds": 0.2})
    cfg["connectors"] = {
        "cert-gh": {"type": "github", "config": {"secret": SECRET}, "governance": {
            "owner": "platform", "slo": {"error_rate_percent": 20,
                                         "availability_percent": 99}}},
        "quiet": {"type": "github", "config": {"secret": SECRET}},
    }
    config = write_config(tmp_path / "gateway.yaml", cfg)
    with thread_server(config) as server:
        assert wait_state(server.url, "quiet", "pending")["breaches"] == []
        for n in range(3):
            assert deliver(server.url, b'{"ref": "refs/heads/main", "n": %d}' % n) == 202
        wait_state(server.url, "cert-gh", "monitoring")
        certified = wait_state(server.url, "cert-gh", "certified")
        assert certified["objectives"]["error_rate_percent"] == 20
        assert certified["breaches"] == []

        for n in range(3):  # rejected: more than 20 % of the window's requests
            assert deliver(server.url, b'{"n": %d}' % n, good=False) == 401
        failed = wait_state(server.url, "cert-gh", "failed", timeout=10)
        assert "error_rate_percent" in failed["breaches"]
        assert failed["measured"]["rejected"] == {"invalid_signature": 3}
        assert failed["health"]["status"] == "degraded"
        metrics = httpx.get(f"{server.url}/metrics").text
        assert ('gateway_connector_certification{connector_id="cert-gh",state="failed"} 1.0'
                in metrics)
        assert ('gateway_connector_slo_breached{connector_id="cert-gh",objective='
                '"error_rate_percent"} 1.0') in metrics
        assert ('gateway_connector_rejections_total{connector_id="cert-gh",reason='
                '"invalid_signature"} 3.0') in metrics
        assert 'gateway_connector_events_accepted_total{connector_id="cert-gh"} 3.0' in metrics
        assert 'gateway_connector_health{connector_id="cert-gh",status="degraded"} 1.0' in metrics

        # the rejections leave the window, then a clean window certifies it again
        wait_state(server.url, "cert-gh", "certified", timeout=20)

    history = read_state(data_dir)["connectors"]["cert-gh"]["certification"]["history"]
    assert [h["to"] for h in history] == ["monitoring", "certified", "failed", "certified"]
    with thread_server(config) as server:  # a restart keeps the state and its history
        view = wait_state(server.url, "cert-gh", "certified", timeout=10)
        assert len(view["certification"]["history"]) == 4
    out = subprocess.run([sys.executable, "-m", "gateway", "connectors", "status", "--config",
                          str(config)], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True)
    assert [line.split()[:2] for line in out.stdout.splitlines()
            if line.startswith(("cert-gh ", "quiet "))] == [["cert-gh", "certified"],
                                                        ["quiet", "pending"]]
