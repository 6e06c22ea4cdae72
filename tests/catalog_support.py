"""Plumbing for the catalogue tests (tests/test_catalog_*.py): requests, a real local
server standing in for Plaid's API and Google's certificate endpoints, Google's side of a
Pub/Sub push, and deliveries made by Azure's Event Grid SDK.

Keys are fetched from ``KeyServer`` through ``ToLocal``, a transport that sends each
request there unchanged (host header, path, body): the fetchers' https and host rules stay
what production runs (tests/test_aws_sns.py does the same for SNS certificates).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpx
import jwt
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm

from connectors.base import Webhook
from connectors.google_pubsub import PubSubConnector
from connectors.jwt_signed import PlaidConnector
from connectors.registry import available
from connectors.request import InboundRequest
from gateway.errors import SignatureError
from tests.helpers import settle

W = TypeVar("W", bound=Webhook[Any])


def now() -> int:
    return int(time.time())


def req(body: bytes, headers: dict[str, str] | None = None, query: dict[str, str] | None = None,
        method: str = "POST") -> InboundRequest:
    return InboundRequest(method, "https://hooks.example.com/webhooks/c",
                          {k.lower(): v for k, v in (headers or {}).items()}, query or {},
                          body, None, datetime.now(UTC))


def make(cls: type[W], **config: Any) -> W:
    return cls("c", cls.Config.model_validate(config))


def build(name: str, *secrets: str, **config: Any) -> Webhook[Any]:
    """The registered type ``name`` with ``secrets`` and ``config``."""
    cls = available()[name]
    c = cls(f"{name}-test", cls.Config.model_validate({"secrets": list(secrets), **config}))
    assert isinstance(c, Webhook)
    return c


def rejected(c: Webhook[Any], request: InboundRequest,
             reason: str = "invalid_signature") -> None:
    """``c`` refuses ``request`` (verified without an event loop) for ``reason``."""
    with pytest.raises(SignatureError) as err:
        settle(c.verify(request))
    assert err.value.reason == reason


def auth(c: Webhook[Any], *requests: InboundRequest) -> list[BaseException | None]:
    """``authenticate`` each request concurrently, in one event loop that closes the
    connector's HTTP client when done (the key cache stays); the errors in order."""

    async def scenario() -> list[BaseException | None]:
        try:
            return await asyncio.gather(*(c.verify(r) for r in requests),
                                        return_exceptions=True)
        finally:
            await c.aclose()

    return asyncio.run(scenario())


def accepted(c: Webhook[Any], r: InboundRequest) -> None:
    [error] = auth(c, r)
    if error is not None:
        raise error


def refused(c: Webhook[Any], r: InboundRequest) -> str:
    """The SignatureError reason ``authenticate`` gives ``r``."""
    [error] = auth(c, r)
    assert isinstance(error, SignatureError), error
    return str(error.reason)


# -- a real local server for Plaid's API and Google's certificates ---------------------

class ToLocal(httpx.AsyncBaseTransport):
    """Every request to the local server, as it is (host header, path, query, body)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


Fetching = TypeVar("Fetching", PlaidConnector, PubSubConnector)


class KeyServer:
    """Stands in for ``*.plaid.com/webhook_verification_key/get`` (POST) and Google's
    ``/oauth2/v3/certs`` (JWKS) and ``/oauth2/v1/certs`` (x509); records every request as
    (method, https://host/path, body)."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.x509: dict[str, str] = {}
        self.plaid: dict[str, dict[str, Any]] = {}
        self.status, self.delay = 200, 0.0
        self.requests: list[tuple[str, str, bytes]] = []
        me = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, value: Any, cache: bool = False) -> None:
                data = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if cache:
                    self.send_header("Cache-Control", "public, max-age=19800, must-revalidate")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> bytes:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                me.requests.append((self.command, f"https://{self.headers['Host']}{self.path}",
                                    body))
                time.sleep(me.delay)
                return body

            def do_GET(self) -> None:
                self._record()
                if me.status != 200:
                    self._answer(me.status, {"error": "failing on purpose"})
                elif self.path == "/oauth2/v3/certs":
                    self._answer(200, me.jwks, cache=True)
                elif self.path == "/oauth2/v1/certs":
                    self._answer(200, me.x509, cache=True)
                else:
                    self._answer(404, {})

            def do_POST(self) -> None:
                body = json.loads(self._record() or b"{}")
                kid = body.get("key_id")
                if me.status != 200:
                    self._answer(me.status, {"error_code": "INTERNAL_SERVER_ERROR"})
                elif kid in me.plaid:
                    self._answer(200, {"key": me.plaid[kid], "request_id": "m8MDnv9okwxFNBV"})
                else:
                    self._answer(400, {"error_type": "INVALID_REQUEST", "request_id": "x",
                                       "error_code": "INVALID_FIELD"})

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def attach(self, c: Fetching) -> Fetching:
        c.keys.transport = ToLocal(int(self.httpd.server_address[1]))
        return c

    def count(self, what: str) -> int:
        return sum(1 for _, url, _ in self.requests if what in url)

    def __enter__(self) -> KeyServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- what the providers send ------------------------------------------------------------

TELNYX_BODY = (b'{"data":{"event_type":"message.received","id":"b301ed3f-1490-491f-995f-'
               b'6e64e69674d4","occurred_at":"2026-01-23T18:10:02.574+00:00","payload":'
               b'{"text":"Hello, World!","type":"SMS"},"record_type":"event"},'
               b'"meta":{"attempt":1,"delivered_to":"https://example.com/webhooks"}}')


def telnyx_headers(key: ed25519.Ed25519PrivateKey, body: bytes, stamp: int) -> dict[str, str]:
    sig = key.sign(str(stamp).encode() + b"|" + body)
    return {"telnyx-signature-ed25519": base64.b64encode(sig).decode(),
            "telnyx-timestamp": str(stamp)}


# cloud.google.com/pubsub/docs/authenticate-push-subscriptions: Google's example token
GOOGLE_EXAMPLE = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IjdkNjgwZDhjNzBkNDRlOTQ3MTMzY2JkNDk5ZWJjMWE2MWMzZDVh"
    "YmMiLCJ0eXAiOiJKV1QifQ.eyJhdWQiOiJodHRwczovL2V4YW1wbGUuY29tIiwiYXpwIjoiMTEzNzc0M"
    "jY0NDYzMDM4MzIxOTY0IiwiZW1haWwiOiJnYWUtZ2NwQGFwcHNwb3QuZ3NlcnZpY2VhY2NvdW50LmNvb"
    "SIsImVtYWlsX3ZlcmlmaWVkIjp0cnVlLCJleHAiOjE1NTAxODU5MzUsImlhdCI6MTU1MDE4MjMzNSwia"
    "XNzIjoiaHR0cHM6Ly9hY2NvdW50cy5nb29nbGUuY29tIiwic3ViIjoiMTEzNzc0MjY0NDYzMDM4MzIxO"
    "TY0In0.QVjyqpmadTyDZmlX2u3jWd1kJ68YkdwsRZDo-QxSPbxjug4ucLBwAs2QePrcgZ6hhkvdc4UHY"
    "4YF3fz9g7XHULNVIzX5xh02qXEH8dK6PgGndIWcZQzjSYfgO-q-R2oo2hNM5HBBsQN4ARtGK_acG-NGG"
    "WM3CQfahbEjZPAJe_B8M7HfIu_G5jOLZCw2EUcGo8BvEwGcLWB2WqEgRM0-xt5-UPzoa3-FpSPG7DHk7"
    "z9zRUeq6eB__ldb-2o4RciJmjVwHgnYqn3VvlX9oVKEgXpNFhKuYA-mWh5o7BCwhujSMmFoBOh6mbIXF"
    "cyf5UiVqKjpqEbqPGo_AvKvIQ9VTQ")
AUDIENCE = "https://example.com"
PUSHER = "gae-gcp@appspot.gserviceaccount.com"
PUSH_BODY = orjson.dumps({
    "message": {"attributes": {"kind": "order.paid"},
                "data": base64.b64encode(b'{"order": 7}').decode(),
                "messageId": "2070443601311540", "message_id": "2070443601311540",
                "publishTime": "2021-02-26T19:13:55.749Z",
                "publish_time": "2021-02-26T19:13:55.749Z"},
    "subscription": "projects/myproject/subscriptions/mysubscription"})


class Google:
    """Google's side: RSA keys by kid, their JWKS and x509 forms, and signed tokens."""

    def __init__(self) -> None:
        self.keys = {"k1": rsa.generate_private_key(public_exponent=65537, key_size=2048)}

    def publish(self, server: KeyServer) -> None:
        server.jwks = {"keys": [{**json.loads(RSAAlgorithm.to_jwk(k.public_key())), "kid": kid,
                                 "alg": "RS256", "use": "sig"} for kid, k in self.keys.items()]}
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
        today = datetime.now(UTC)
        server.x509 = {kid: x509.CertificateBuilder().subject_name(name).issuer_name(name)
                       .public_key(k.public_key()).serial_number(1)
                       .not_valid_before(today - dt.timedelta(days=1))
                       .not_valid_after(today + dt.timedelta(days=1)).sign(k, hashes.SHA256())
                       .public_bytes(serialization.Encoding.PEM).decode()
                       for kid, k in self.keys.items()}

    def token(self, kid: str = "k1", key: Any = None, **claims: Any) -> str:
        at = now()
        body = {"aud": AUDIENCE, "azp": "113774264463038321964", "email": PUSHER,
                "email_verified": True, "exp": at + 3600, "iat": at - 5,
                "iss": "https://accounts.google.com", "sub": "113774264463038321964", **claims}
        return jwt.encode(body, key or self.keys[kid], "RS256", headers={"kid": kid})


EG_KEY = "eventgrid-shared-key-for-tests-0123456789"
# learn.microsoft.com/azure/event-grid/webhook-event-delivery: the validation event example
EG_VALIDATION = b"""[
  {
    "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
    "topic": "/subscriptions/xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    "subject": "",
    "data": {
      "validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
      "validationUrl": "https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/estest/validate?id=512d38b6-c7b8-40c8-89fe-f46f9e9622b6&t=2018-04-26T20:30:54.4538837Z&apiVersion=2018-05-01-preview&token=1A1A1A1A"
    },
    "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
    "eventTime": "2018-01-25T22:12:19.4556811Z",
    "metadataVersion": "1",
    "dataVersion": "1"
  }
]"""


def sdk_deliveries() -> list[tuple[dict[str, str], bytes]]:
    """What Azure's EventGridPublisherClient sends (Event Grid schema, then a CloudEvents
    batch), caught by a local server: the headers (aeg-sas-key, content-type) and body."""
    from azure.core.credentials import AzureKeyCredential
    from azure.core.messaging import CloudEvent
    from azure.eventgrid import EventGridEvent, EventGridPublisherClient

    caught: list[tuple[dict[str, str], bytes]] = []

    class Catch(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            caught.append(({k: v for k, v in self.headers.items()
                            if k.lower() in ("aeg-sas-key", "content-type")}, body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Catch)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        client = EventGridPublisherClient(f"http://127.0.0.1:{httpd.server_address[1]}/api",
                                          AzureKeyCredential(EG_KEY))
        client.send([EventGridEvent(subject="/items/7", event_type="Contoso.Items.ItemReceived",
                                    data={"itemSku": "Standard"}, data_version="1.0"),
                     EventGridEvent(subject="/items/8", event_type="Contoso.Items.ItemShipped",
                                    data={"itemSku": "Premium"}, data_version="1.0")])
        client.send([CloudEvent(source="/contoso/items", type="Contoso.Items.ItemReceived",
                                data={"itemSku": "Standard"})])
    finally:
        httpd.shutdown()
        httpd.server_close()
    return caught
