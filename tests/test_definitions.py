"""Connector definitions: every type has one, ``gateway providers --json`` prints them,
``docs/providers.md`` is generated from them, and a third-party package's types (built
and installed here) show up with theirs, or stop startup when theirs is invalid."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
from jsonschema.validators import validator_for

from connectors import registry
from connectors.definition import Definition
from devtools.providers_doc import DOC_PATH, render
from tests.helpers import ROOT, base_config, write_config


def test_every_type_has_a_valid_definition() -> None:
    found = registry.definitions()
    assert set(found) == set(registry.available())
    assert len(found) >= 75
    for name, d in found.items():
        assert d.name == name
        if d.docs_url.startswith("docs/"):
            assert (ROOT / d.docs_url.split("#")[0]).exists(), d.docs_url
        validator_for(d.config_schema).check_schema(d.config_schema)
    assert found["github"].display_name == "GitHub"
    assert found["http_poll"].kind == "poller"
    assert found["push"].kind == "push"
    assert "secret" in found["stripe"].config_schema["properties"]


def test_the_docs_tables_are_generated_from_the_definitions() -> None:
    doc = DOC_PATH.read_text()
    assert render(doc) == doc, (
        "docs/providers.md is stale: .venv/bin/python -m devtools.providers_doc")
    rows = {line.split("|")[1].strip().strip("`") for line in doc.splitlines()
            if line.startswith("| `")}
    assert set(registry.available()) <= rows


def test_every_type_that_takes_deliveries_says_how_it_verifies_them() -> None:
    """Its scheme, proof, coverage, window, dedup key, handshake and vectors: the
    providers table. A built-in webhook or push type without them fails here."""
    found = registry.definitions()
    missing = sorted(n for n, d in found.items() if d.kind != "poller" and d.verification is None)
    assert not missing, f"no verification stated for {missing}"
    stripe = found["stripe"].verification
    assert stripe is not None
    assert stripe.covers == "`{timestamp}.{body}`"
    assert "stripe SDK" in stripe.vectors


def test_gateway_providers_json_prints_every_definition() -> None:
    out = subprocess.run([sys.executable, "-m", "gateway", "providers", "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True)
    printed = {d["name"]: Definition.model_validate(d) for d in orjson.loads(out.stdout)}
    assert printed == registry.definitions()


PACKAGE = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "acme-gateway-connectors"
version = "2.3.1"

[project.entry-points."gateway.connectors"]
acme = "acme_connectors:AcmeConnector"
"""
MODULE = '''
from typing import ClassVar
from connectors.base import Webhook
from connectors.options import SecretRequired


class AcmeConnector(Webhook[SecretRequired]):
    """Acme's webhooks."""

    source: ClassVar[str] = "acme"
    display_name = {display_name!r}
    docs_url = {docs_url!r}
    scopes = ("events:read",)

    async def verify(self, request):
        raise NotImplementedError

    def normalize(self, request):
        return []
'''


def install(tmp_path: Path, *, display_name: str, docs_url: str) -> Path:
    """A tiny connector package, built and installed into a directory of its own."""
    source, target = tmp_path / "src", tmp_path / "site"
    source.mkdir()
    (source / "pyproject.toml").write_text(PACKAGE)
    (source / "acme_connectors.py").write_text(textwrap.dedent(MODULE).format(
        display_name=display_name, docs_url=docs_url))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--target", str(target), str(source)],  # setuptools from the index
                   check=True, capture_output=True, timeout=300)
    return target


def gateway(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_third_party_package_shows_up_with_its_definition(tmp_path: Path) -> None:
    site = install(tmp_path, display_name="Acme", docs_url="https://docs.acme.example/hooks")
    out = gateway(site, "providers", "--json")
    assert out.returncode == 0, out.stderr
    [acme] = [Definition.model_validate(d) for d in orjson.loads(out.stdout)
              if d["name"] == "acme"]
    assert (acme.display_name, acme.version, acme.kind) == ("Acme", "2.3.1", "webhook")
    assert acme.description == "Acme's webhooks."
    assert acme.scopes == ("events:read",)
    assert "secret" in acme.config_schema["properties"]


def test_an_invalid_definition_stops_startup_naming_the_problems(tmp_path: Path) -> None:
    site = install(tmp_path, display_name="", docs_url="http://acme.example")
    config = write_config(tmp_path / "gateway.yaml", base_config(
        "127.0.0.1:1", tmp_path / "data", "t.{source}"))
    out = gateway(site, "check-config", "--config", str(config))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "connector type 'acme' has an invalid definition" in out.stderr
    assert "display_name" in out.stderr
    assert "docs_url: Value error, must be an https URL" in out.stderr
