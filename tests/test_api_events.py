"""POST /api/events: already-normalized events from push connectors, end to end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from connectors.request import event_id
from tests.helpers import ThreadServer, base_config, consume, thread_server, write_config

pytestmark = pytest.mark.kafka
TOKEN = "push-token-" + uuid.uuid4().hex
SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def server(kafka_bootstrap: str, data_dir: Path, topic_prefix: str,
           tmp_path: Path) -> Iterator[tuple[ThreadServer, str]]:
    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.{{source}}")
    cfg["connectors"] = {
        "billing": {"type": "push", "config": {"secret": TOKEN, "sources": ["billing"]}},
        "crm": {"type": "push", "config": {"secret": SIGNING}},
        "gh": {"type": "github", "config": {"secret": "s"}},
    }
    with thread_server(write_config(tmp_path / "g.yaml", cfg)) as s:
        yield s, topic_prefix


def event(**over: Any) -> dict[str, Any]:
    return {"source": "billing", "type": "invoice.paid", "timestamp": "2026-03-01T10:00:00Z",
            "payload": {"invoice": 7}, "id": "inv-" + uuid.uuid4().hex, **over}


def post(s: ThreadServer, body: Any, token: str | None = TOKEN, **headers: str) -> httpx.Response:
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{s.url}/api/events", content=orjson.dumps(body), headers=headers)


def test_one_event_with_a_bearer_token(server: tuple[ThreadServer, str],
                                       kafka_bootstrap: str) -> None:
    s, prefix = server
    e = event()
    r = post(s, e)
    assert r.status_code == 202, r.text
    assert r.json()["event_ids"] == [event_id("billing", f"client:{e['id']}")]
    [record] = consume(kafka_bootstrap, f"{prefix}.billing", expect=1)
    envelope = orjson.loads(record.value)
    assert envelope["connector_id"] == "billing"
    assert envelope["source"] == "billing"
    assert envelope["timestamp"] == "2026-03-01T10:00:00Z"
    assert envelope["payload"] == {"invoice": 7}
    again = post(s, e)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True


def test_a_batch_is_all_or_nothing_with_every_problem_and_its_path(
        server: tuple[ThreadServer, str], kafka_bootstrap: str) -> None:
    s, prefix = server
    body = [event(), event(timestamp="yesterday", payload=[1]), event(type=""), "nope",
            event(connector_id="gh")]
    r = post(s, body)
    assert r.status_code == 400
    assert sorted((p["path"], p["problem"]) for p in r.json()["problems"]) == [
        ("$[1].payload", "must be an object"),
        ("$[1].timestamp", "must be an ISO 8601 date-time string"),
        ("$[2].type", "must be a non-empty string"),
        ("$[3]", "must be an object"),
        ("$[4].connector_id", "unknown field"),
    ]
    assert consume(kafka_bootstrap, f"{prefix}.billing", timeout=2) == []


def test_a_batch_with_duplicates_accepts_the_new_ones(server: tuple[ThreadServer, str],
                                                      kafka_bootstrap: str) -> None:
    s, prefix = server
    seen = event()
    assert post(s, seen).status_code == 202
    fresh = [event(), event()]
    r = post(s, [seen, *fresh])
    assert r.status_code == 202
    assert r.json()["duplicates"] == [event_id("billing", f"client:{seen['id']}")]
    records = consume(kafka_bootstrap, f"{prefix}.billing", expect=3)
    assert len({orjson.loads(x.value)["id"] for x in records}) == 3


def test_standard_webhooks_signature_authenticates_as_its_connector(
        server: tuple[ThreadServer, str], kafka_bootstrap: str) -> None:
    from standardwebhooks.webhooks import Webhook

    s, prefix = server
    body = orjson.dumps(event(source="crm", type="contact.created")).decode()
    now = datetime.now(UTC)
    headers = {"webhook-id": "msg_api_1", "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": Webhook(SIGNING).sign("msg_api_1", now, body)}
    r = httpx.post(f"{s.url}/api/events", content=body, headers=headers)
    assert r.status_code == 202, r.text
    [record] = consume(kafka_bootstrap, f"{prefix}.crm", expect=1)
    assert orjson.loads(record.value)["connector_id"] == "crm"


def test_credentials_sources_and_webhook_route(server: tuple[ThreadServer, str]) -> None:
    s, _ = server
    assert post(s, event(), token="wrong").status_code == 401
    missing = post(s, event(), token=None)
    assert missing.status_code == 401
    wrong_source = post(s, event(source="crm"))  # outside its ACL: sources [billing]
    assert wrong_source.status_code == 403
    assert wrong_source.json()["error"] == "forbidden"
    assert wrong_source.json()["problems"][0]["path"] == "$"
    assert httpx.post(f"{s.url}/webhooks/billing", content=b"{}").status_code == 404
    lines = s.wait_audit(lambda line: line["outcome"] == "rejected", count=3)
    assert {line["reason"] for line in lines} >= {"invalid_signature", "missing_signature",
                                                  "forbidden"}
