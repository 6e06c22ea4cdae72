"""The checked-in envelope schema is current; logs are JSON and hold no secret."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
from structlog.testing import capture_logs

from gateway.envelope import SCHEMA_PATH, schema_text
from tests.helpers import base_config, thread_server, write_config


def test_checked_in_schema_is_generated_from_the_model() -> None:
    assert SCHEMA_PATH.read_text() == schema_text(), (
        "schema/envelope.schema.json is stale: run `.venv/bin/python -m devtools.schema`")


@pytest.mark.kafka
def test_logs_carry_request_and_connector_ids_but_no_secret(
        kafka_bootstrap: str, data_dir: Path, topic_prefix: str, tmp_path: Path) -> None:
    secret = "log-test-secret-" + uuid.uuid4().hex
    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.{{source}}")
    cfg["connectors"] = {"gh": {"type": "github", "config": {"secret": secret}}}
    with thread_server(write_config(tmp_path / "g.yaml", cfg)) as server, \
            capture_logs() as logs:
        body = b'{"ref": "x"}'
        wrong = hmac.new(b"nope", body, hashlib.sha256).hexdigest()
        r = httpx.post(f"{server.url}/webhooks/gh", content=body,
                       headers={"X-Hub-Signature-256": "sha256=" + wrong,
                                "X-GitHub-Event": "push", "X-Request-Id": "req-123"})
        assert r.status_code == 401
        ours = r.headers["x-request-id"]  # the gateway's own; the client's is kept beside
        assert ours != "req-123"
    [entry] = [e for e in logs if e["event"] == "rejected"]
    assert entry["reason"] == "invalid_signature"
    assert (entry["request_id"], entry["client_request_id"], entry["connector_id"]) == (
        ours, "req-123", "gh")
    assert orjson.dumps(logs, default=str).find(secret.encode()) == -1
    assert wrong not in orjson.dumps(logs, default=str).decode()


def test_raw_payload_embedding_equals_serializing_the_parsed_body() -> None:
    from datetime import UTC, datetime

    from gateway.envelope import Envelope, encode_envelope

    body = b' {"b": [1, 2.5, "x\\u00e9"], "a": {"nested": null}}\n'
    now = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    common = dict(id="i", source="s", type="t", timestamp=now, connector_id="c",
                  received_at=now, payload=orjson.loads(body))
    raw = encode_envelope(**common, raw_payload=body)
    parsed = encode_envelope(**common)
    assert orjson.loads(raw) == orjson.loads(parsed)
    assert orjson.loads(parsed) == orjson.loads(Envelope(**common).to_json())


def test_library_logs_come_out_as_the_same_json_lines() -> None:
    script = ("import logging\nfrom gateway import logging as gateway_logging\n"
              "gateway_logging.configure()\n"
              "logging.getLogger('aiokafka.conn').warning('broker %s unreachable', 'b1')\n"
              "logging.getLogger('aiokafka.conn').info('below the floor')\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parent.parent)
    [line] = [orjson.loads(x) for x in out.stdout.splitlines()]
    assert (line["event"], line["level"], line["logger"]) == (
        "broker b1 unreachable", "warning", "aiokafka.conn")
    assert line["timestamp"].endswith("Z")
    assert out.stderr == ""
