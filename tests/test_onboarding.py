"""``gateway connectors add`` (gateway/onboarding.py), as a user runs it: through a
pseudo-terminal (pexpect), and with flags as a script does."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pexpect
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.helpers import ROOT, local_api, thread_server

CONFIG = """\
# the team's gateway
kafka:
  bootstrap_servers: 127.0.0.1:1   # no broker: deliveries wait in the buffer
data_dir: {data}
connectors:
  gh:
    type: github
    config: {{secret: "an-existing-github-secret"}}
"""
SECRET = "typed-hidden-4c5d6e7f8a9b"


def gateway(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "connectors", "add", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG.format(data=tmp_path / "data"))
    return path


def test_a_webhook_added_in_a_terminal_with_its_secret_hidden_and_stored(
        config: Path) -> None:
    child = pexpect.spawn(sys.executable, ["-m", "gateway", "connectors", "add", "github",
                                           "gh-new", "--config", str(config)],
                          cwd=str(ROOT), encoding="utf-8", timeout=60)
    child.expect(r"secret \(.*hidden\): ")
    child.sendline(SECRET)
    child.expect(r"Added connectors\.gh-new to .*check-config: ok")
    child.expect(pexpect.EOF)
    child.close()
    transcript = (child.before or "") + (child.after if isinstance(child.after, str) else "")
    assert child.exitstatus == 0
    text = config.read_text()
    assert SECRET not in text  # a reference, never the value
    assert "${file:secrets/gh-new.secret}" in text
    assert text.startswith("# the team's gateway\n")  # the rest of the file unchanged
    assert "bootstrap_servers: 127.0.0.1:1   # no broker" in text
    stored = config.parent / "secrets" / "gh-new.secret"
    assert stored.read_text() == SECRET + "\n"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert SECRET not in transcript  # not echoed


def test_the_printed_test_delivery_is_accepted_by_the_running_gateway(config: Path) -> None:
    out = gateway("github", "gh-new", "--config", str(config), "--secret", "secret=S", "--yes",
                  env={"S": SECRET})
    assert out.returncode == 0, out.stderr
    curl = out.stdout[out.stdout.index("curl "):].replace("\\\n", " ")
    words = shlex.split(curl.splitlines()[0])
    headers = dict(w.split(": ", 1) for w in words[words.index("-H") + 1::2]
                   if ": " in w)
    body = words[words.index("--data-binary") + 1].encode()
    with thread_server(config) as server:
        r = httpx.post(f"{server.url}/webhooks/gh-new", content=body, headers=headers)
        assert r.status_code == 202, r.text


@pytest.fixture
def source() -> Iterator[str]:
    async def items(request: Request) -> Response:
        return JSONResponse({"data": [{"id": 1}, {"id": 2}]})

    async def broken(request: Request) -> Response:
        return JSONResponse({"error": "down"}, 500)

    with local_api(Starlette(routes=[Route("/items", items),
                                     Route("/broken", broken)])) as url:
        yield url


def test_a_poller_is_checked_against_its_source_before_it_is_written(
        config: Path, source: str) -> None:
    before = config.read_text()
    failing = gateway("http_poll", "items", "--config", str(config), "--yes",
                      "--set", f"url={source}/broken", "--set", "records=/data",
                      "--set", "interval_seconds=60", "--set", "max_retries=0")
    assert failing.returncode == 2
    assert "the source did not answer as expected" in failing.stderr
    assert config.read_text() == before  # nothing written
    ok = gateway("http_poll", "items", "--config", str(config), "--yes",
                 "--set", f"url={source}/items", "--set", "records=/data",
                 "--set", "interval_seconds=60")
    assert ok.returncode == 0, ok.stderr
    assert "Reached the source: 2 record(s)" in ok.stdout
    assert re.search(r"items:\n    type: http_poll\n", config.read_text())


def test_without_a_terminal_what_is_missing_is_an_error_and_nothing_changes(
        config: Path) -> None:
    before = config.read_text()
    out = gateway("stripe", "--config", str(config), "--yes")
    assert out.returncode == 2
    assert "secret" in out.stderr
    taken = gateway("github", "gh", "--config", str(config), "--yes")
    assert "connectors.gh already exists" in taken.stderr
    assert config.read_text() == before
    assert not (config.parent / "secrets").exists()


def test_the_flow_asks_again_until_the_options_validate(config: Path) -> None:
    """In-process, with the terminal's answers scripted: a wrong URL first, then the
    schedule a rule over two fields asks for, then a secret for an env backend."""
    import io

    from gateway.onboarding import Terminal, add

    answers = iter(["not a url", "http://127.0.0.1:9/items", "60"])
    out = io.StringIO()
    term = Terminal(interactive=True, out=out, ask_text=lambda _: next(answers),
                    ask_hidden=lambda _: SECRET)
    add(config, "http_poll", "items", term=term, options={"records": "/data"},
        secret_env={}, backend="env", base_url="https://hooks.example.com", verify=False)
    text = config.read_text()
    assert "url: http://127.0.0.1:9/items" in text
    assert "interval_seconds: 60" in text
    assert next(answers, None) is None  # each answer was asked for
    web = io.StringIO()
    add(config, "twilio", "tw", term=Terminal(interactive=True, out=web,
                                             ask_text=lambda _: "https://h.example/tw",
                                             ask_hidden=lambda _: SECRET),
        options={}, secret_env={}, backend="env", base_url="https://hooks.example.com")
    text = config.read_text()
    assert "${GATEWAY_TW_SECRET}" in text  # env backend: a variable, never the value
    assert "set GATEWAY_TW_SECRET where the gateway runs" in web.getvalue()
    assert "Give the provider this URL: https://hooks.example.com/webhooks/tw" in \
        web.getvalue()
    assert SECRET not in out.getvalue() + web.getvalue() + text


def test_explain_in_process_names_each_entity(tmp_path: Path) -> None:
    from gateway import manifest

    declared = manifest.Manifest.model_validate({
        "source": {"name": "crm", "base_url": "https://api.crm.example"},
        "entities": [{"name": "contacts", "endpoint": "/contacts",
                      "fields": {"email": {"type": "string", "pii": True}}}],
        "schedule": {"cron": "*/5 * * * *"}, "governance": {"pii_handling": "exclude"}})
    lines = manifest.explain("crm", declared, "events.{source}")
    assert "crm.contacts: GET https://api.crm.example/contacts on cron '*/5 * * * *'" in \
        lines[1]
    assert "full refresh" in lines[1]
    assert lines[2] == "    personal data: $.email (exclude)"
