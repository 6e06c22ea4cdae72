"""The credential store (gateway/credentials.py, gateway/reloading.py): secrets as
``${file:...}`` and ``${vault:...}`` references, taken again when they change without a
restart, never shown; OAuth2 access tokens shared by the pollers with the same
credentials, and a rotated refresh token written back where it came from.

No Vault or OpenBao server installs here from a package registry (the Go proxy refuses
``github.com/openbao/openbao``; ``github.com/hashicorp/vault`` serves only its ``api``
module), so ``KvServer`` below answers the KV v2 and AppRole routes the gateway calls,
as Vault's HTTP API documents them, on a real local listener."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.polling.http import PollHttp
from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.reloading import Reloader
from tests.helpers import base_config, github_headers, local_api, thread_server, write_config

ROOT_TOKEN = "hvs.test-root-token-4f1c"


@dataclass
class KvServer:
    """Vault's KV v2 (``/v1/<mount>/data/<path>``: read, write with check-and-set) and
    AppRole login (``/v1/auth/approle/login``), with token checks."""

    url: str = ""
    secrets: dict[str, tuple[dict[str, Any], int]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=lambda: {ROOT_TOKEN})
    approle: tuple[str, str] = ("role-7", "secret-id-9")
    seen_tokens: list[str | None] = field(default_factory=list)

    def put(self, path: str, **fields: str) -> None:
        version = self.secrets.get(path, ({}, 0))[1] + 1
        self.secrets[path] = (dict(fields), version)

    def app(self) -> Starlette:
        async def login(request: Request) -> Response:
            body = await request.json()
            if (body.get("role_id"), body.get("secret_id")) != self.approle:
                return JSONResponse({"errors": ["invalid role or secret id"]}, 400)
            token = "hvs.approle-" + uuid.uuid4().hex
            self.tokens.add(token)
            return JSONResponse({"auth": {"client_token": token, "lease_duration": 600}})

        async def data(request: Request) -> Response:
            token = request.headers.get("x-vault-token")
            self.seen_tokens.append(token)
            if token not in self.tokens:
                return JSONResponse({"errors": ["permission denied"]}, 403)
            path = request.path_params["path"]
            if request.method == "GET":
                if path not in self.secrets:
                    return JSONResponse({"errors": []}, 404)
                fields, version = self.secrets[path]
                return JSONResponse({"data": {"data": fields,
                                              "metadata": {"version": version}}})
            body = await request.json()
            current = self.secrets.get(path, ({}, 0))[1]
            if body.get("options", {}).get("cas") != current:
                return JSONResponse({"errors": ["check-and-set parameter did not match"]},
                                    400)
            self.secrets[path] = (body["data"], current + 1)
            return JSONResponse({"data": {"version": current + 1}})

        return Starlette(routes=[
            Route("/v1/auth/approle/login", login, methods=["POST"]),
            Route("/v1/secret/data/{path:path}", data, methods=["GET", "POST"])])


@pytest.fixture
def vault() -> Iterator[KvServer]:
    kv = KvServer()
    with local_api(kv.app()) as kv.url:
        yield kv


def config(tmp_path: Path, connectors: dict[str, Any], **extra: Any) -> Path:
    cfg = base_config("127.0.0.1:1", tmp_path / "data", "events.{source}", **extra)
    cfg["connectors"] = connectors
    return write_config(tmp_path / "g.yaml", cfg)


def test_file_and_vault_references_resolve_and_never_show(
        tmp_path: Path, vault: KvServer) -> None:
    (tmp_path / "gh.secret").write_text("file-secret-0a9b8c7d\n")
    vault.put("gateway/stripe", secret="vault-secret-1b2c3d4e")
    path = config(tmp_path, {
        "gh-cred": {"type": "github", "config": {"secret": "${file:gh.secret}"}},
        "stripe": {"type": "stripe", "config": {"secret": "${vault:gateway/stripe#secret}"}},
    }, credentials={"vault": {"address": vault.url, "role_id": "role-7",
                              "secret_id": "${file:approle.secret}"}})
    (tmp_path / "approle.secret").write_text("secret-id-9")
    loaded = load_config(path, env={})
    assert loaded.connectors["gh-cred"].config.secret.get_secret_value() == "file-secret-0a9b8c7d"
    assert loaded.connectors["stripe"].config.secret.get_secret_value() == \
        "vault-secret-1b2c3d4e"
    assert vault.seen_tokens
    assert all(t and t.startswith("hvs.approle-") for t in vault.seen_tokens)  # AppRole
    shown = repr(loaded.settings) + loaded.settings.model_dump_json()
    for value in ("file-secret-0a9b8c7d", "vault-secret-1b2c3d4e", "secret-id-9"):
        assert value not in shown


def test_unresolvable_references_are_config_errors_without_values(
        tmp_path: Path, vault: KvServer) -> None:
    vault.put("gateway/other", token="x" * 20)
    path = config(tmp_path, {
        "a": {"type": "github", "config": {"secret": "${file:missing.secret}"}},
        "b": {"type": "github", "config": {"secret": "${vault:gateway/none#secret}"}},
        "c": {"type": "github", "config": {"secret": "${vault:gateway/other#secret}"}},
    }, credentials={"vault": {"address": vault.url, "token": "hvs.wrong-token"}})
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    found = [str(p) for p in err.value.problems]
    assert f"connectors.a.config.secret: no file {tmp_path / 'missing.secret'}" in found
    assert "connectors.b.config.secret: Vault answered HTTP 403 for" \
           " /v1/secret/data/gateway/none" in found
    assert not any("x" * 20 in p for p in found)
    with pytest.raises(ConfigError) as plain_http:
        load_config(config(tmp_path, {}, credentials={"vault": {
            "address": "http://vault.example:8200", "token": "t"}}), env={})
    assert "credentials.vault.address" in str(plain_http.value)


def test_a_rotated_secret_file_is_taken_without_a_restart(tmp_path: Path) -> None:
    secret_file = tmp_path / "gh.secret"
    secret_file.write_text("first-secret-5e6f7a8b\n")
    path = config(tmp_path, {"gh-cred": {"type": "github",
                                    "config": {"secret": "${file:gh.secret}"}}},
                  credentials={"watch_seconds": 0.1})
    def deliver(url: str, secret: str) -> int:
        body = b'{"action":"opened","n":"%s"}' % uuid.uuid4().hex.encode()
        return httpx.post(f"{url}/webhooks/gh-cred", content=body,
                          headers=github_headers(body, secret)).status_code

    with thread_server(path) as server:
        assert deliver(server.url, "first-secret-5e6f7a8b") == 202
        tmp = tmp_path / "gh.secret.new"  # as Kubernetes does: a new file swapped in
        tmp.write_text("second-secret-9c0d1e2f\n")
        tmp.replace(secret_file)
        deadline = time.monotonic() + 10
        while deliver(server.url, "second-secret-9c0d1e2f") != 202:
            assert time.monotonic() < deadline, "the new secret was never taken"
            time.sleep(0.1)
        assert deliver(server.url, "first-secret-5e6f7a8b") == 401
        secret_file.unlink()  # broken: refused, the running configuration stays
        time.sleep(0.5)
        assert deliver(server.url, "second-secret-9c0d1e2f") == 202


def test_a_reload_answers_the_requests_made_before_it(tmp_path: Path) -> None:
    """``POST /admin/reload`` asks every process to reload, then reloads its own at once
    and reports what changed. Its own watch loop must not make that reload again later:
    it would take an edit made meanwhile, and the next ``/admin/reload`` would report
    nothing changed (a race the admin test ran into under load)."""
    (tmp_path / "gh.secret").write_text("first-secret-5e6f7a8b\n")
    path = config(tmp_path, {"gh-cred": {"type": "github",
                                    "config": {"secret": "${file:gh.secret}"}}})
    asked = [1.0]

    async def apply(_: Any, changed: dict[str, Any], removed: list[str]) -> None:
        return None

    reloader = Reloader(load_config(path), apply, lambda: asked[0])
    asked[0] = 2.0  # a reload is asked for (reload.request touched)...
    asyncio.run(reloader.reload())  # ...and made here, at once
    assert not reloader._changed(refresh_seconds=3600)


@dataclass
class TokenApi:
    """An OAuth2 token endpoint that rotates refresh tokens, and a resource behind it."""

    url: str = ""
    refresh: str = "refresh-0"
    grants: list[str] = field(default_factory=list)
    issued: int = 0

    def app(self) -> Starlette:
        async def token(request: Request) -> Response:
            form = dict(parse_qsl((await request.body()).decode()))
            self.grants.append(f"{form.get('grant_type')}:{form.get('refresh_token')}")
            if form.get("refresh_token") != self.refresh:
                return JSONResponse({"error": "invalid_grant"}, 400)
            self.issued += 1
            self.refresh = f"refresh-{self.issued}"
            return JSONResponse({"access_token": f"access-{self.issued}",
                                 "expires_in": 3600, "refresh_token": self.refresh})

        async def items(request: Request) -> Response:
            ok = request.headers.get("authorization") == f"Bearer access-{self.issued}"
            return JSONResponse({"data": []}, 200 if ok else 401)

        return Starlette(routes=[Route("/token", token, methods=["POST"]),
                                 Route("/items", items)])


@pytest.fixture
def token_api() -> Iterator[TokenApi]:
    api = TokenApi()
    with local_api(api.app()) as api.url:
        yield api


def test_pollers_share_a_token_and_a_rotated_refresh_token_is_written_back(
        tmp_path: Path, vault: KvServer, token_api: TokenApi) -> None:
    api = token_api
    vault.put("gateway/crm", refresh_token="refresh-0")

    def poller(entity: str) -> dict[str, Any]:
        return {"type": "http_poll", "config": {
            "url": f"{api.url}/items?entity={entity}", "records": "/data",
            "interval_seconds": 60, "source": "crm",
            "auth": {"type": "oauth2", "token_url": f"{api.url}/token", "client_id": "gw",
                     "refresh_token": "${vault:gateway/crm#refresh_token}"}}}

    loaded = load_config(config(tmp_path, {"contacts": poller("contacts"),
                                           "deals": poller("deals")},
                                credentials={"vault": {"address": vault.url,
                                                       "token": ROOT_TOKEN}}), env={})

    async def poll_both() -> None:
        async with httpx.AsyncClient() as client:
            http = PollHttp(client, requests_per_second=None, max_retries=0)
            for cid in ("contacts", "deals", "contacts"):
                connector = loaded.connectors[cid]
                connector.write_back_to(loaded.write_back)  # type: ignore[attr-defined]
                await connector.poll(http, {})  # type: ignore[attr-defined]

    asyncio.run(poll_both())
    assert api.grants == ["refresh_token:refresh-0"]  # one token for both pollers
    assert vault.secrets["gateway/crm"] == ({"refresh_token": "refresh-1"}, 2)


def test_a_rotated_value_is_written_back_to_its_file(tmp_path: Path) -> None:
    from gateway.credentials import Resolver

    token = tmp_path / "refresh.token"
    token.write_text("refresh-a\n")
    resolver = Resolver({}, tmp_path)
    assert resolver.expand({"t": "${file:refresh.token}"}, (), lambda *_: None) == {
        "t": "refresh-a"}
    assert resolver.write_back("refresh-a", "refresh-b")
    assert token.read_text() == "refresh-b\n"
    assert not resolver.files_changed()  # its own write is not a change to reload for
    assert not resolver.write_back("never-resolved", "x")  # not from a reference
