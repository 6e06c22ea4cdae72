"""The gateway on a broker's OAUTHBEARER listener, its tokens from a real local OAuth 2.0
token endpoint (client-credentials grant). The launcher's OAUTH listener accepts unsecured
JWTs (``"alg":"none"``), which the endpoint here issues to the client it knows.

Events arrive through it. With a wrong client secret the endpoint answers 401: /readyz
says not ready, that the endpoint refused, and not the secret; deliveries are still
answered 202 and kept, and published once the secret is fixed and the gateway restarted
on the same data."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from devtools.kafka import SecureAccess, unsecured_jwt
from tests.helpers import consume, thread_server
from tests.test_kafka_security import arrives, config, deliver, readiness

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CLIENT_ID = "gateway-client"
CLIENT_SECRET = "oauth-s3cret-value"
WRONG_SECRET = "not-the-oauth-s3cret"
SUBJECT = "gateway"
LIFETIME = 300


@dataclass
class TokenEndpoint:
    """``POST /token``: client credentials in the Basic Authorization header (RFC 6749
    2.3.1), ``grant_type=client_credentials``; answers an unsecured JWT for ``SUBJECT``."""

    url: str = ""
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    issued: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, auth: str, form: dict[str, list[str]]
               ) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append((auth, form))
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if path != "/token" or form.get("grant_type") != ["client_credentials"]:
            return 400, {"error": "invalid_request"}
        if auth != expected:
            return 401, {"error": "invalid_client"}
        scope = form.get("scope", [None])[0]
        with self.lock:
            self.issued += 1
        return 200, {"access_token": unsecured_jwt(SUBJECT, lifetime=LIFETIME, scope=scope),
                     "token_type": "Bearer", "expires_in": LIFETIME}


@pytest.fixture(scope="module")
def token_endpoint() -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            status, body = endpoint.answer(self.path, self.headers.get("Authorization", ""),
                                           form)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="token"')
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint.url = f"http://127.0.0.1:{server.server_port}/token"
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()


def oauth(access: SecureAccess, endpoint: TokenEndpoint, secret: str = CLIENT_SECRET
          ) -> dict[str, Any]:
    return {"bootstrap_servers": access.oauth, "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "OAUTHBEARER", "sasl_oauth_token_url": endpoint.url,
            "sasl_oauth_client_id": CLIENT_ID, "sasl_oauth_client_secret": secret,
            "sasl_oauth_scope": "kafka.produce"}


def test_events_arrive_with_tokens_from_the_token_endpoint(
        secure_kafka: SecureAccess, token_endpoint: TokenEndpoint, tmp_path: Path) -> None:
    access = secure_kafka
    topic = f"oauth-{uuid.uuid4().hex[:6]}"
    issued = token_endpoint.issued
    arrives(access.plaintext, config(tmp_path, topic, oauth(access, token_endpoint)), topic)
    # A token per client (the relay's producer, the topic check's admin client), not per
    # connection: each client caches its token until 60 s before expires_in.
    assert 1 <= token_endpoint.issued - issued <= 2
    for auth, form in token_endpoint.requests:
        assert auth.startswith("Basic ")
        assert form["scope"] == ["kafka.produce"]
        assert CLIENT_SECRET not in json.dumps(form)  # only in the Authorization header


def test_a_refused_client_secret_is_not_ready_keeps_events_and_publishes_once_fixed(
        secure_kafka: SecureAccess, token_endpoint: TokenEndpoint, tmp_path: Path) -> None:
    access = secure_kafka
    topic = f"oauth-refused-{uuid.uuid4().hex[:6]}"
    wrong = oauth(access, token_endpoint, secret=WRONG_SECRET)
    with thread_server(config(tmp_path, topic, wrong)) as server:
        ids = deliver(server.url, 3)  # durable in the buffer, answered 202
        ready = readiness(server.url)
        assert not ready["ready"], ready
        assert ready["kafka"]["refused"]
        assert "the OAuth token endpoint refused the token request: HTTP 401 invalid_client" \
            in ready["reason"], ready["reason"]
        assert WRONG_SECRET not in json.dumps(ready)
        assert ready["buffer"]["events"] == 3
    with thread_server(config(tmp_path, topic, oauth(access, token_endpoint))) as server:
        values = [r.value for r in consume(access.plaintext, topic, expect=3)]
        assert readiness(server.url)["ready"]
    assert sorted(i for i in ids if any(i.encode() in v for v in values)) == sorted(ids)
