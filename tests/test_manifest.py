"""Polling connectors declared by a manifest (gateway/manifest.py): validated against the
published schema with every error's path, explained, and run through ``gateway run``
against a real local API and a real broker: each entity polled, its personal data
handled, its contract checked, its records keyed as declared."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devtools.schema import manifest_text
from gateway import manifest
from gateway.config import load_config
from gateway.errors import ConfigError
from tests.helpers import ROOT, base_config, consume, local_api, thread_server, write_config

HASH_KEY = "manifest-test-hash-key-0123456789abcdef"


def crm_manifest(url: str, topic: str) -> dict[str, Any]:
    return {
        "version": 1,
        "source": {"name": "crm", "base_url": url,
                   "auth": {"type": "bearer", "token": "${file:crm.token}"},
                   "rate_limit": {"requests_per_second": 20, "burst": 5}},
        "entities": [
            {"name": "contacts", "endpoint": "/contacts", "records": "/data",
             "fields": {"id": {"type": "string"},
                        "email": {"type": "string", "nullable": True, "pii": "hash"},
                        "updated_at": {"type": "string"}}},
            {"name": "deals", "endpoint": "deals", "records": "/data",
             "fields": {"id": {"type": "string"}, "amount": {"type": "integer"},
                        "updated_at": {"type": "string"}}},
        ],
        "update_strategy": {"type": "incremental", "cursor_field": "updated_at",
                            "param": "since"},
        "schedule": {"interval_seconds": 3600},
        "destination": {"topic": f"{topic}.{{entity}}", "key_field": "id"},
        "governance": {"owner": "sales-ops", "classification": "confidential"},
    }


@pytest.fixture
def api() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []

    async def contacts(request: Request) -> Response:
        hits.append(f"contacts {request.headers.get('authorization')} "
                    f"{request.query_params.get('since')}")
        return JSONResponse({"data": [
            {"id": "c1", "email": "ada@example.com", "updated_at": "2026-01-01T00:00:00Z"},
            {"id": "c2", "email": None, "updated_at": "2026-01-02T00:00:00Z"}]})

    async def deals(request: Request) -> Response:
        hits.append(f"deals {request.headers.get('authorization')}")
        return JSONResponse({"data": [
            {"id": "d1", "amount": 100, "updated_at": "2026-01-01T00:00:00Z"},
            {"id": "d2", "amount": "lots", "updated_at": "2026-01-01T00:00:00Z"}]})

    with local_api(Starlette(routes=[Route("/contacts", contacts),
                                     Route("/deals", deals)])) as url:
        yield url, hits


def test_the_published_schema_is_the_one_the_gateway_validates_with() -> None:
    assert manifest.SCHEMA_PATH.read_text() == manifest_text(), (
        "schema/manifest.schema.json is stale: run `.venv/bin/python -m devtools.schema`")


def test_every_problem_is_reported_with_its_path(tmp_path: Path) -> None:
    bad = crm_manifest("ftp://crm", "t")
    del bad["entities"][0]["endpoint"]
    bad["entities"][1]["fields"]["amount"]["type"] = "money"
    bad["schedule"] = {"interval_seconds": -5}
    bad["surprise"] = 1
    path = tmp_path / "crm.yaml"
    path.write_text(yaml.safe_dump(bad))
    out = subprocess.run([sys.executable, "-m", "gateway", "manifest", "validate", str(path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    for where in ("$:", "$.entities[0]:", "$.entities[1].fields.amount.type:",
                  "$.schedule.interval_seconds:", "$.source.base_url:"):
        assert where in out.stderr, out.stderr
    cfg = base_config("127.0.0.1:1", tmp_path / "data", "events.{source}")
    cfg["connectors"] = {"crm": {"manifest": "crm.yaml"}}
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path / "g.yaml", cfg), env={})
    assert any(p.path == "connectors.crm.manifest" and p.message.startswith(
        "$.entities[0]:") for p in err.value.problems)


def test_explain_says_what_is_polled_how_and_where_it_goes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    path = tmp_path / "crm.yaml"
    path.write_text(yaml.safe_dump(crm_manifest("https://api.crm.example/v2", "sales")))
    assert main(["manifest", "validate", str(path)]) == 0
    assert main(["manifest", "explain", str(path)]) == 0
    text = capsys.readouterr().out
    assert f"{path}: ok (2 entities)" in text
    assert "source crm: https://api.crm.example/v2 (auth: bearer, 20.0/s, burst 5)" in text
    assert ("crm.contacts: GET https://api.crm.example/v2/contacts every 3600 s, records at"
            " /data, id id; incremental on updated_at (sent back as ?since=); events"
            " 'contacts.synced' to 'sales.contacts' keyed by id") in text
    assert "personal data: $.email (hash)" in text
    assert "crm.token" not in text  # how it authenticates, never with what


@pytest.mark.kafka
def test_each_entity_is_polled_with_its_contract_and_personal_data_handled(
        api: tuple[str, list[str]], kafka_bootstrap: str, tmp_path: Path,
        topic_prefix: str) -> None:
    url, hits = api
    (tmp_path / "crm.yaml").write_text(yaml.safe_dump(crm_manifest(url, topic_prefix)))
    cfg = base_config(kafka_bootstrap, tmp_path / "data", f"{topic_prefix}.{{source}}")
    cfg["kafka"]["dead_letter_topic"] = f"{topic_prefix}.dlq"
    cfg["governance"] = {"hash_key": HASH_KEY}
    cfg["connectors"] = {"crm": {"manifest": "crm.yaml"}}
    (tmp_path / "crm.token").write_text("crm-token-5a6b7c8d\n")
    path = write_config(tmp_path / "g.yaml", cfg)
    loaded = load_config(path, env={})
    assert sorted(loaded.connectors) == ["crm.contacts", "crm.deals"]
    with thread_server(path):
        contacts = consume(kafka_bootstrap, f"{topic_prefix}.contacts", expect=2)
        deals = consume(kafka_bootstrap, f"{topic_prefix}.deals", expect=1)
        [letter] = consume(kafka_bootstrap, f"{topic_prefix}.dlq", expect=1)
    assert {h.split()[0] for h in hits} == {"contacts", "deals"}
    assert all("Bearer crm-token-5a6b7c8d" in h for h in hits)
    envelopes = [orjson.loads(r.value) for r in contacts]
    assert {e["type"] for e in envelopes} == {"contacts.synced"}
    assert {r.key for r in contacts} == {b"c1", b"c2"}  # destination.key_field
    ada = next(e for e in envelopes if e["payload"]["id"] == "c1")
    assert ada["payload"]["email"] != "ada@example.com"  # hashed before storage
    assert ada["pii"] == [{"path": "$.email", "handling": "hash"}]
    assert orjson.loads(deals[0].value)["payload"]["id"] == "d1"
    assert orjson.loads(letter.value)["reason"] == "schema_violation"  # amount: "lots"


def test_an_updated_record_is_a_new_event_and_the_same_one_is_not() -> None:
    from connectors.registry import available

    declared = manifest.Manifest.model_validate(crm_manifest("https://crm.example", "t"))
    entry = manifest.compile_entries("crm", declared)["crm.contacts"]
    cls = available()["http_poll"]
    config = {**entry["config"], "auth": {"type": "bearer", "token": "t-0123456789"}}
    poller = cls("crm.contacts", cls.Config.model_validate(config))
    rows = [{"id": "c1", "updated_at": "2026-01-01T00:00:00Z"},
            {"id": "c1", "updated_at": "2026-01-01T00:00:00Z"},  # the cursor's overlap
            {"id": "c1", "updated_at": "2026-02-01T00:00:00Z"}]  # updated since
    events, _ = poller._events(rows, None)  # type: ignore[attr-defined]
    assert [e.id for e in events] == ["c1@2026-01-01T00:00:00Z", "c1@2026-01-01T00:00:00Z",
                                      "c1@2026-02-01T00:00:00Z"]
