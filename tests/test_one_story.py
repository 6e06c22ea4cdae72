"""Logs, audit and metrics tell one story (issue 15 item 6): every rejection, whatever
refused it (the edge, a signature, an ACL, a method), is one audit line, one count in
``gateway_rejections_total{connector_id, reason}`` and one ``rejected`` log event."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import httpx
from structlog.testing import capture_logs

from gateway.metrics import METRICS
from tests.helpers import base_config, github_headers, thread_server, write_config

TOKEN = "one-story-push-token-77"


def rejections(metrics: str) -> Counter[str]:
    found: Counter[str] = Counter()
    for cid, reason, n in re.findall(
            r'gateway_rejections_total\{connector_id="([^"]*)",reason="([^"]*)"\} (\S+)',
            metrics):
        if cid.startswith("story-") or cid in ("_unknown", "-"):
            found[reason] += int(float(n))
    return found


def test_every_rejection_is_audited_counted_and_logged_alike(tmp_path: Path) -> None:
    cfg = base_config("127.0.0.1:1", tmp_path / "data", "events.{source}")
    cfg["server"]["max_body_bytes"] = 1024
    cfg["connectors"] = {
        "story-gh": {"type": "github", "config": {"secret": "story-secret-value-1"}},
        "story-push": {"type": "push", "config": {"secret": TOKEN}}}
    METRICS.rejections.clear()  # this process's counters: other tests' leave theirs
    with capture_logs() as logs, thread_server(write_config(tmp_path / "g.yaml", cfg)) as s:
        body = b'{"action":"opened"}'
        hook = f"{s.url}/webhooks/story-gh"
        statuses = [
            httpx.post(hook, content=body, headers=github_headers(body, "wrong")).status_code,
            httpx.post(hook, content=body).status_code,
            httpx.post(f"{s.url}/webhooks/nobody", content=body).status_code,
            httpx.post(hook, content=b"x" * 4096).status_code,
            httpx.get(hook).status_code,
            httpx.post(f"{s.url}/api/events", content=b"not json",
                       headers={"Authorization": f"Bearer {TOKEN}"}).status_code,
            httpx.post(f"{s.url}/api/events", content=b'{"source":"elsewhere","type":"t",'
                       b'"timestamp":"2026-01-01T00:00:00Z","payload":{}}',
                       headers={"Authorization": f"Bearer {TOKEN}"}).status_code,
            httpx.post(f"{s.url}/api/events", content=b"{}").status_code,
        ]
        assert statuses == [401, 401, 404, 413, 405, 400, 403, 401]
        audited = Counter(line["reason"] for line in s.wait_audit(
            lambda line: line["outcome"] == "rejected", count=8))
        counted = rejections(httpx.get(f"{s.url}/metrics").text)
    logged = Counter(e["reason"] for e in logs if e["event"] == "rejected")
    assert audited == Counter({"invalid_signature": 1, "missing_signature": 2,
                               "unknown_connector": 1, "too_large": 1,
                               "method_not_allowed": 1, "malformed": 1, "forbidden": 1})
    assert counted == audited
    assert logged == audited
