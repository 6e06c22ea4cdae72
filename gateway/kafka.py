"""The Kafka side: every client of the project (the relay's producer, the admin client
of topic checks and provisioning, ``gateway tail``'s consumer) is made here, from
``kafka:``, so that each one connects the same way: TLS, mutual TLS, SASL (PLAIN, SCRAM,
OAUTHBEARER through an OAuth 2.0 client-credentials grant).

``describe`` turns what a failed connection raised into a reason an operator can act on
(a wrong password, an untrusted certificate, a missing client certificate), never
carrying a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context

from gateway.kafka_settings import KafkaConfig

TOKEN_TIMEOUT = 10.0  # seconds for the OAuth token endpoint to answer
TOKEN_EARLY = 60.0  # a token is renewed this long before it expires
TOKEN_DEFAULT_LIFETIME = 300.0  # when the endpoint says nothing of expires_in
# RFC 6749 5.2 error codes are [a-z_]: one is quoted back; anything else is not.
_OAUTH_ERROR = re.compile(r"[a-z_]{1,64}")


class TokenRefused(ConnectionError):
    """The OAuth token endpoint refused the client (HTTP 4xx but 408 and 429): the
    configuration to fix, not an outage to wait out."""


class ClientCredentials(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped
    """OAUTHBEARER tokens from an OAuth 2.0 client-credentials grant (RFC 6749 4.4),
    cached until shortly before they expire. The client secret goes only to the
    configured token URL, in the Authorization header (RFC 6749 2.3.1)."""

    def __init__(self, cfg: KafkaConfig) -> None:
        # All three are there: the config refuses OAUTHBEARER without them.
        assert cfg.sasl_oauth_token_url is not None
        assert cfg.sasl_oauth_client_id is not None
        assert cfg.sasl_oauth_client_secret is not None
        self.url = cfg.sasl_oauth_token_url
        self.auth = (cfg.sasl_oauth_client_id, cfg.sasl_oauth_client_secret.get_secret_value())
        self.scope = cfg.sasl_oauth_scope
        self._token: str | None = None
        self._expires = 0.0

    async def token(self) -> str:
        if self._token is not None and time.monotonic() < self._expires:
            return self._token
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        try:
            async with httpx.AsyncClient(timeout=TOKEN_TIMEOUT, follow_redirects=False) as http:
                answer = await http.post(self.url, data=form, auth=self.auth)
        except httpx.HTTPError as exc:
            raise ConnectionError(f"the OAuth token endpoint is unreachable:"
                                  f" {type(exc).__name__}") from None
        body: Any = None
        if answer.headers.get("content-type", "").startswith("application/json"):
            with contextlib.suppress(ValueError):  # not JSON after all: no token in it
                body = answer.json()
        if 400 <= answer.status_code < 500 and answer.status_code not in (408, 429):
            error = body.get("error") if isinstance(body, dict) else None
            code = f" {error}" if isinstance(error, str) and _OAUTH_ERROR.fullmatch(
                error) else ""
            raise TokenRefused(f"the OAuth token endpoint refused the token request: HTTP"
                               f" {answer.status_code}{code} (kafka.sasl_oauth_token_url,"
                               f" _client_id, _client_secret, _scope)")
        if answer.status_code != 200 or not isinstance(body, dict) or not isinstance(
                body.get("access_token"), str):
            raise ConnectionError(f"the OAuth token endpoint answered HTTP"
                                  f" {answer.status_code} without an access_token")
        lifetime = body.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float) else (
            TOKEN_DEFAULT_LIFETIME)
        self._token = body["access_token"]
        self._expires = time.monotonic() + max(0.0, seconds - TOKEN_EARLY)
        return self._token


DIAGNOSE_TIMEOUT = 10.0  # seconds for the diagnostic connection


async def explain(cfg: KafkaConfig, exc: BaseException) -> tuple[str, bool]:
    """Why a client could not connect, and whether the cluster refused the gateway
    (``refuses_us``). aiokafka's clients say only "Unable to bootstrap" and log the real
    cause: then one connection is opened the same way to find it."""
    if isinstance(exc, KafkaConnectionError):
        exc = await diagnose(cfg) or exc
    return describe(exc), refuses_us(exc)


async def diagnose(cfg: KafkaConfig) -> BaseException | None:
    """Connect to the bootstrap servers as a client does; the first failure, as raised
    (a SASL refusal, a TLS verification error), or None when one connection succeeds."""
    options = connection(cfg)
    first: BaseException | None = None
    for server in cfg.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            conn = await asyncio.wait_for(create_conn(
                host.strip("[]"), int(port), client_id=cfg.client_id,
                request_timeout_ms=cfg.request_timeout_ms,
                ssl_context=options.get("ssl_context"),
                security_protocol=cfg.security_protocol,
                sasl_mechanism=options.get("sasl_mechanism"),
                sasl_plain_username=options.get("sasl_plain_username"),
                sasl_plain_password=options.get("sasl_plain_password"),
                sasl_oauth_token_provider=options.get("sasl_oauth_token_provider")),
                DIAGNOSE_TIMEOUT)
        except (KafkaError, OSError, TimeoutError, ValueError) as exc:
            first = first or exc
            continue
        conn.close()
        return None
    return first


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what caused it (``__cause__``, else ``__context__``), each once."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__ or cause.__context__


def describe(exc: BaseException) -> str:
    """Why a connection to Kafka failed, in words an operator can act on. Never holds a
    secret: only exception types, TLS verification messages and host:port appear."""
    for cause in _causes(exc):  # the first reason we know of
        reason = _reason(cause)
        if reason is not None:
            return reason
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def refuses_us(exc: BaseException) -> bool:
    """Whether Kafka (or the OAuth token endpoint) answered but refused the gateway
    (authentication, certificates): a configuration to fix, not an outage to wait out."""
    return any(isinstance(cause, SaslAuthenticationFailed | AuthenticationFailedError
                          | UnsupportedSaslMechanismError | ssl.SSLError | TokenRefused)
               for cause in _causes(exc))


def _reason(exc: BaseException) -> str | None:
    if isinstance(exc, SaslAuthenticationFailed | AuthenticationFailedError):
        return ("SASL authentication failed: the brokers refused the user name or password"
                " (kafka.sasl_plain_username / sasl_plain_password, or the OAuth token)")
    if isinstance(exc, UnsupportedSaslMechanismError):
        return "the brokers do not enable this SASL mechanism (kafka.sasl_mechanism)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"TLS: the brokers' certificate is not trusted ({exc.verify_message};"
                " kafka.ssl_cafile, kafka.ssl_check_hostname)")
    if isinstance(exc, ssl.SSLError):
        text = f"{exc.reason or ''} {exc}".lower()
        if "certificate required" in text or "bad certificate" in text or (
                "unknown ca" in text):
            return ("TLS: the brokers refused the client certificate or require one"
                    " (kafka.ssl_certfile / kafka.ssl_keyfile)")
        return f"TLS: {exc.reason or type(exc).__name__}"
    if isinstance(exc, ConnectionError) and "OAuth" in str(exc):
        return str(exc)
    return None


def ssl_context(cfg: KafkaConfig) -> ssl.SSLContext:
    context: ssl.SSLContext = create_ssl_context(
        cafile=cfg.ssl_cafile, certfile=cfg.ssl_certfile, keyfile=cfg.ssl_keyfile)
    context.check_hostname = cfg.ssl_check_hostname
    return context


def connection(cfg: KafkaConfig) -> dict[str, Any]:
    """What every client is given to reach the cluster."""
    options: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers, "client_id": cfg.client_id,
        "request_timeout_ms": cfg.request_timeout_ms,
        "security_protocol": cfg.security_protocol}
    if cfg.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl_context(cfg)
    if cfg.sasl_mechanism is not None:
        options["sasl_mechanism"] = cfg.sasl_mechanism
    if cfg.sasl_mechanism == "OAUTHBEARER":
        options["sasl_oauth_token_provider"] = ClientCredentials(cfg)
    elif cfg.sasl_mechanism is not None:
        assert cfg.sasl_plain_password is not None  # checked by the config
        options["sasl_plain_username"] = cfg.sasl_plain_username
        options["sasl_plain_password"] = cfg.sasl_plain_password.get_secret_value()
    return options


def make_producer(cfg: KafkaConfig) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **connection(cfg),
        acks="all",
        enable_idempotence=True,
        linger_ms=cfg.linger_ms,
        max_batch_size=256 * 1024,
        max_request_size=cfg.max_message_bytes + 65536,  # the record, and a request's own
        retry_backoff_ms=200,
        compression_type=cfg.compression_type,
    )


def make_admin(cfg: KafkaConfig) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**connection(cfg))


def make_consumer(cfg: KafkaConfig, *topics: str, from_beginning: bool) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(*topics, **connection(cfg), enable_auto_commit=False,
                            auto_offset_reset="earliest" if from_beginning else "latest")
