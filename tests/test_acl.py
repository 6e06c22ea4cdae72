"""Access control that fails closed (gateway/acl.py): each connector produces only the
sources, event types and topics its ACL allows; left out, the narrow default. A push
connector is refused with a 403, a webhook's event is dead-lettered, and a webhook or
poller configured outside its own ACL does not start."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.config import load_config
from gateway.errors import ConfigError
from tests.helpers import base_config, consume, github_headers, thread_server, write_config

TOKEN = "acl-push-token-1f2e3d4c"


def problems(tmp_path: Path, connectors: dict[str, Any], **kafka: Any) -> list[str]:
    cfg = base_config("127.0.0.1:9092", tmp_path / "data", "events.{source}")
    cfg["kafka"].update(kafka)
    cfg["connectors"] = connectors
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path / "g.yaml", cfg), env={})
    return [str(p) for p in err.value.problems]


def test_a_webhook_configured_outside_its_acl_does_not_start(tmp_path: Path) -> None:
    found = problems(tmp_path, {
        "gh-acl": {"type": "github", "config": {"secret": "s3cr3t-gh-value", "topic": "audit.gh",
                                            "events": ["push", "issues"]},
               "acl": {"topics": ["events.*"], "event_types": ["push", "push.*"]}},
        "stripe": {"type": "stripe", "config": {"secret": "whsec-stripe-value"},
                   "acl": {"sources": ["billing"], "topics": ["billing.*"]}},
    })
    assert sorted(found) == [
        "connectors.gh-acl.config.events: 'issues' is outside acl.event_types",
        "connectors.gh-acl.config.topic: 'audit.gh' is outside acl.topics",
        "connectors.stripe.acl.sources: the connector's own source 'stripe' is not in it",
        "connectors.stripe.acl.topics: its events go to 'events.stripe' (kafka.topic),"
        " which is not in it",
    ]


def test_a_push_connectors_declared_sources_must_be_inside_its_acl(tmp_path: Path) -> None:
    found = problems(tmp_path, {"p": {"type": "push", "config": {
        "secret": TOKEN, "sources": ["billing", "crm"]}, "acl": {"sources": ["billing"]}}})
    assert found == ["connectors.p.config.sources: 'crm' is outside acl.sources"]


def test_without_an_acl_a_connector_gets_the_narrow_default(tmp_path: Path) -> None:
    cfg = base_config("127.0.0.1:9092", tmp_path / "data", "events.{source}")
    cfg["connectors"] = {"daemon": {"type": "push", "config": {"secret": TOKEN}},
                         "gh-acl": {"type": "github", "config": {"secret": "s3cr3t-gh-value"}}}
    loaded = load_config(write_config(tmp_path / "g.yaml", cfg), env={})
    assert loaded.acls["daemon"].sources == ["daemon"]  # its own id, never "anything"
    assert loaded.acls["gh-acl"].sources == ["github"]
    assert loaded.acls["gh-acl"].topics is None  # only where its own routing sends them


@pytest.mark.kafka
def test_push_outside_its_acl_is_a_403_and_a_webhook_event_a_dead_letter(
        kafka_bootstrap: str, tmp_path: Path, topic_prefix: str) -> None:
    cfg = base_config(kafka_bootstrap, tmp_path / "data", f"{topic_prefix}.{{source}}")
    cfg["connectors"] = {
        "daemon": {"type": "push", "config": {"secret": TOKEN}},  # default: source daemon
        "billing": {"type": "push", "config": {"secret": TOKEN + "-billing"},
                    "acl": {"sources": ["billing"], "event_types": ["invoice.*"]}},
        "gh-acl": {"type": "github", "config": {"secret": "s3cr3t-gh-value"},
               "acl": {"event_types": ["push"]}},
    }

    def push(token: str, source: str, etype: str) -> httpx.Response:
        event = {"source": source, "type": etype, "timestamp": "2026-03-01T10:00:00Z",
                 "payload": {"n": 1}, "id": uuid.uuid4().hex}
        return httpx.post(f"{server.url}/api/events", content=orjson.dumps(event),
                          headers={"Authorization": f"Bearer {token}"})

    with thread_server(write_config(tmp_path / "g.yaml", cfg)) as server:
        assert push(TOKEN, "daemon", "job.done").status_code == 202
        other = push(TOKEN, "billing", "invoice.paid")  # another connector's source
        assert other.status_code == 403
        assert other.json()["error"] == "forbidden"
        assert push(TOKEN + "-billing", "billing", "invoice.paid").status_code == 202
        assert push(TOKEN + "-billing", "billing", "refund.issued").status_code == 403

        body = b'{"action":"opened","pull_request":{"number":1}}'
        r = httpx.post(f"{server.url}/webhooks/gh-acl", content=body,
                       headers=github_headers(body, "s3cr3t-gh-value"))
        assert r.status_code == 202, r.text
        assert r.json()["dead_lettered"] is True
        [letter] = consume(kafka_bootstrap, f"{topic_prefix}.dlq", expect=1)
        assert orjson.loads(letter.value)["reason"] == "forbidden"
        assert consume(kafka_bootstrap, f"{topic_prefix}.github", timeout=2) == []
        assert len(consume(kafka_bootstrap, f"{topic_prefix}.daemon", expect=1)) == 1
        lines = server.wait_audit(lambda line: line.get("reason") == "forbidden", count=3)
        assert sorted(line["outcome"] for line in lines) == [
            "dead_lettered", "rejected", "rejected"]
