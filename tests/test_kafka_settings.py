"""``kafka:`` security options: validated with their key paths, laid over by ``KAFKA_*``,
handed to every client the same way, secrets kept secret; OAUTHBEARER tokens from a real
local OAuth 2.0 token endpoint."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.kafka import ClientCredentials, connection, describe, refuses_us
from gateway.kafka_settings import KafkaConfig
from tests.helpers import write_config

SCRAM = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
         "sasl_plain_username": "gateway", "sasl_plain_password": "n0t-a-guessable-pw"}


def load(tmp_path: Path, kafka: dict[str, Any], env: dict[str, str] | None = None,
         ) -> KafkaConfig:
    path = write_config(tmp_path / "g.yaml", {"kafka": kafka, "data_dir": str(tmp_path)})
    return load_config(path, env=env or {}).settings.kafka


def problems(tmp_path: Path, kafka: dict[str, Any], env: dict[str, str] | None = None
             ) -> str:
    with pytest.raises(ConfigError) as failed:
        load(tmp_path, kafka, env)
    return str(failed.value)


def test_secured_options_are_accepted_and_the_password_stays_secret(tmp_path: Path) -> None:
    kafka = load(tmp_path, {"bootstrap_servers": "b1:9096,b2:9096", **SCRAM})
    assert kafka.security_protocol == "SASL_SSL"
    assert kafka.sasl_mechanism == "SCRAM-SHA-512"
    assert "n0t-a-guessable-pw" not in repr(kafka)
    assert "n0t-a-guessable-pw" not in json.dumps(kafka.model_dump(mode="json"))
    options = connection(kafka)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_plain_password"] == "n0t-a-guessable-pw"  # to the client only
    assert options["ssl_context"].check_hostname


def test_inconsistent_options_are_refused_with_their_key_path(tmp_path: Path) -> None:
    assert "kafka: Value error, security_protocol SASL_SSL needs sasl_mechanism" in problems(
        tmp_path, {"security_protocol": "SASL_SSL"})
    text = problems(tmp_path, {"security_protocol": "SASL_PLAINTEXT",
                               "sasl_mechanism": "SCRAM-SHA-256"})
    assert "needs sasl_plain_username and sasl_plain_password" in text
    assert "sasl_mechanism needs security_protocol" in problems(
        tmp_path, {"sasl_mechanism": "PLAIN"})
    assert "need security_protocol SSL or SASL_SSL" in problems(
        tmp_path, {"ssl_cafile": __file__})
    assert "go together" in problems(
        tmp_path, {"security_protocol": "SSL", "ssl_certfile": __file__})
    assert "kafka.ssl_cafile: Value error, cannot read the file" in problems(
        tmp_path, {"security_protocol": "SSL", "ssl_cafile": str(tmp_path / "nope.pem")})
    assert "kafka.security_protocol" in problems(tmp_path, {"security_protocol": "TLS"})
    assert "kafka.sasl_oauth_token_url: Value error, must be an https URL" in problems(
        tmp_path, {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER",
                   "sasl_oauth_token_url": "http://idp.example.com/token",
                   "sasl_oauth_client_id": "gw", "sasl_oauth_client_secret": "s3cr3t-v4lue"})


def test_a_placeholder_password_stops_startup_outside_development_mode(
        tmp_path: Path) -> None:
    kafka = {**SCRAM, "sasl_plain_password": "change-me"}
    text = problems(tmp_path, kafka)
    assert "kafka.sasl_plain_password: looks like a placeholder" in text
    assert "change-me" not in text
    assert load(tmp_path, kafka, {"GATEWAY_DEV": "1"}).sasl_plain_password is not None


def test_the_environment_sets_every_security_option(tmp_path: Path) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "b:9094", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "api-key",
           "KAFKA_SASL_PASSWORD": "env-secret-value", "KAFKA_SSL_CAFILE": __file__,
           "KAFKA_SSL_CHECK_HOSTNAME": "false"}
    kafka = load(tmp_path, {"bootstrap_servers": "file:9092", "security_protocol": "SSL"}, env)
    assert kafka.bootstrap_servers == "b:9094"
    assert kafka.security_protocol == "SASL_SSL"
    assert kafka.sasl_plain_username == "api-key"
    assert kafka.sasl_plain_password is not None
    assert kafka.sasl_plain_password.get_secret_value() == "env-secret-value"
    assert kafka.ssl_cafile == __file__
    assert kafka.ssl_check_hostname is False


class TokenEndpoint(BaseHTTPRequestHandler):
    """An OAuth 2.0 token endpoint: client credentials in the Authorization header."""

    calls: list[tuple[str, str]] = []  # noqa: RUF012 - the test reads what arrived

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = self.rfile.read(length).decode()
        auth = self.headers.get("Authorization", "")
        self.calls.append((auth, form))
        expected = "Basic " + base64.b64encode(b"gateway-client:client-s3cret").decode()
        ok = auth == expected and "grant_type=client_credentials" in form
        body = (json.dumps({"access_token": f"token-{len(self.calls)}", "token_type": "Bearer",
                            "expires_in": 61}) if ok else json.dumps({"error": "invalid"}))
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def token_url() -> Iterator[str]:
    TokenEndpoint.calls = []
    server = HTTPServer(("127.0.0.1", 0), TokenEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/oauth2/token"
    finally:
        server.shutdown()
        server.server_close()


def oauth(token_url: str, secret: str = "client-s3cret") -> KafkaConfig:  # noqa: S107
    return KafkaConfig.model_validate({
        "security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER",
        "sasl_oauth_token_url": token_url, "sasl_oauth_client_id": "gateway-client",
        "sasl_oauth_client_secret": secret, "sasl_oauth_scope": "kafka"})


def test_oauthbearer_tokens_come_from_the_token_endpoint_and_are_cached(
        token_url: str) -> None:
    provider = connection(oauth(token_url))["sasl_oauth_token_provider"]
    assert isinstance(provider, ClientCredentials)

    async def twice() -> tuple[str, str]:
        return await provider.token(), await provider.token()

    first, again = asyncio.run(twice())
    assert first == again == "token-1"  # cached: expires_in 61 s, renewed 60 s early
    assert len(TokenEndpoint.calls) == 1
    auth, form = TokenEndpoint.calls[0]
    assert auth.startswith("Basic ")
    assert "client-s3cret" not in form  # the secret travels only in the header
    assert "scope=kafka" in form
    provider._expires = 0.0  # the token is due for renewal
    assert asyncio.run(provider.token()) == "token-2"


def test_a_refused_token_request_says_so_without_the_secret(token_url: str) -> None:
    provider = ClientCredentials(oauth(token_url, secret="wrong-s3cret"))
    with pytest.raises(ConnectionError) as refused:
        asyncio.run(provider.token())
    assert "HTTP 401" in str(refused.value)
    assert "wrong-s3cret" not in str(refused.value)
    assert refuses_us(refused.value)  # a configuration to fix: /readyz is not ready
    assert describe(refused.value) == str(refused.value)


def test_the_planned_topics_are_those_the_gateway_can_name_before_any_event(
        tmp_path: Path) -> None:
    from gateway.provisioning import planned

    path = write_config(tmp_path / "p.yaml", {
        "data_dir": str(tmp_path),
        "kafka": {"topic": "events.{source}", "dead_letter_topic": "events.dlq",
                  "topics": [{"pattern": "events.*", "partitions": 6},
                             {"name": "events.extra"}]},
        "connectors": {
            "hooks": {"type": "webhook", "config": {"secret": "a-real-secret-value-1",
                                                    "source": "orders"}},
            "billing": {"type": "push", "config": {"secret": "a-real-secret-value-2",
                                                   "sources": ["invoices", "refunds"]}},
            "anything": {"type": "push", "config": {"secret": "a-real-secret-value-3"}},
            "typed": {"type": "webhook", "config": {"secret": "a-real-secret-value-4",
                                                    "topic": "by-type.{type}"}}}})
    topics, dynamic = planned(load_config(path, env={}))
    assert [t.name for t in topics] == ["events.anything", "events.dlq", "events.extra",
                                        "events.invoices", "events.orders", "events.refunds"]
    assert all(t.spec is not None and t.spec.partitions == 6 for t in topics
               if t.name != "events.extra")
    assert dynamic == ["by-type.{type}"]  # a push source with no list writes its own id
