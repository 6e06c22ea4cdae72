"""Secured listeners of a local broker: SASL_SSL with SCRAM-SHA-512, mutual TLS, and
SASL_PLAINTEXT with OAUTHBEARER (the listener named OAUTH).

Inter-broker and controller traffic stays on PLAINTEXT and CONTROLLER; the secured
listeners are for clients only. Certificates come from ``tls.write_pki``.

The OAUTH listener validates tokens with Kafka's default server callback handler,
``OAuthBearerUnsecuredValidatorCallbackHandler``: an unsigned JWT (``"alg":"none"``) with
a ``sub`` and an ``exp`` still to come is accepted, whoever made it (``unsecured_jwt``).
It tests OAuth clients and token endpoints; it authenticates no one.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from ssl import SSLContext
from typing import Any

from aiokafka.abc import AbstractTokenProvider

from devtools.kafka.tls import Pki

SCRAM_MECHANISM = "SCRAM-SHA-512"
OAUTH_MECHANISM = "OAUTHBEARER"
OAUTH_LISTENER = "OAUTH"  # SASL_PLAINTEXT, OAUTHBEARER only
_UNSAFE = frozenset(',[]="\\\' \t\r\n')  # kafka-storage's --add-scram syntax has no quoting


@dataclass(frozen=True)
class Security:
    """Asks for the secured listeners, besides PLAINTEXT: ``LocalKafka(security=Security())``.

    The SCRAM user is created when the storage is formatted; with ``password=None`` a
    random one is made for each broker (read it from ``kafka.secure.password``). With a
    kept ``data_dir``, give the password: the user is only made when storage is new.
    ``oauth=False`` leaves out the OAUTH listener (OAUTHBEARER, unsecured JWTs)."""

    username: str = "gateway"
    password: str | None = None
    oauth: bool = True

    def __post_init__(self) -> None:
        for what, value in (("username", self.username), ("password", self.password)):
            if value is not None and (not value or _UNSAFE & set(value)):
                raise ValueError(f"the SCRAM {what} must be non-empty, without "
                                 "spaces, quotes, commas, brackets or '='")


@dataclass(frozen=True)
class SecureAccess:
    """What a client needs to reach the secured listeners (bootstraps list every node)."""

    plaintext: str           # bootstrap of the PLAINTEXT listener(s): no authentication
    sasl_ssl: str            # SASL_SSL listener(s): SCRAM-SHA-512 over TLS
    ssl: str                 # SSL listener(s): TLS with a required client certificate
    ca_file: Path            # trust this CA to verify the broker (and it signs client_cert)
    client_cert: Path        # PEM: a client certificate the SSL listener accepts
    client_key: Path         # PEM, PKCS#8, unencrypted
    other_ca_file: Path      # an unrelated CA: a client trusting only it must fail
    other_client_cert: Path  # signed by the unrelated CA: the SSL listener must refuse it
    other_client_key: Path
    username: str
    password: str = field(repr=False)
    mechanism: str = SCRAM_MECHANISM
    oauth: str = ""          # SASL_PLAINTEXT listener(s), OAUTHBEARER: any unsecured JWT
                             # (see unsecured_jwt); "" with Security(oauth=False)

    def ssl_context(self, *, client_cert: bool = False) -> SSLContext:
        """Verifies the broker against ca_file; presents client_cert when asked."""
        from aiokafka.helpers import create_ssl_context

        if client_cert:
            context: SSLContext = create_ssl_context(
                cafile=self.ca_file, certfile=self.client_cert, keyfile=self.client_key)
        else:
            context = create_ssl_context(cafile=self.ca_file)
        return context

    def sasl_ssl_config(self) -> dict[str, Any]:
        """Keyword arguments for an aiokafka producer, consumer or admin client."""
        return {"bootstrap_servers": self.sasl_ssl, "security_protocol": "SASL_SSL",
                "sasl_mechanism": self.mechanism, "sasl_plain_username": self.username,
                "sasl_plain_password": self.password, "ssl_context": self.ssl_context()}

    def mtls_config(self) -> dict[str, Any]:
        """Keyword arguments for an aiokafka client on the mutual-TLS listener."""
        return {"bootstrap_servers": self.ssl, "security_protocol": "SSL",
                "ssl_context": self.ssl_context(client_cert=True)}

    def oauth_config(self, tokens: AbstractTokenProvider | None = None) -> dict[str, Any]:
        """Keyword arguments for an aiokafka client on the OAUTH listener; by default its
        tokens are unsecured JWTs for ``username``."""
        if not self.oauth:
            raise ValueError("this broker was started with Security(oauth=False)")
        return {"bootstrap_servers": self.oauth, "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": OAUTH_MECHANISM,
                "sasl_oauth_token_provider": tokens or UnsecuredTokens(self.username)}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsecured_jwt(subject: str, *, lifetime: float = 300.0, scope: str | None = None,
                  now: float | None = None) -> str:
    """An unsigned JWT (RFC 7515 'none', an empty signature) the OAUTH listener accepts
    while ``exp`` is to come: ``sub`` is the principal, ``User:<subject>``."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"sub": subject, "iat": issued, "exp": issued + int(lifetime)}
    if scope is not None:
        claims["scope"] = scope
    header = _b64url(json.dumps({"alg": "none"}).encode())
    return f"{header}.{_b64url(json.dumps(claims).encode())}."


class UnsecuredTokens(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka OAUTHBEARER tokens for the OAUTH listener, made on the spot."""

    def __init__(self, subject: str) -> None:
        self.subject = subject

    async def token(self) -> str:
        return unsecured_jwt(self.subject)


def scram_format_args(username: str, password: str) -> list[str]:
    """``kafka-storage format`` arguments that create the SCRAM user with the cluster."""
    return ["--add-scram", f"{SCRAM_MECHANISM}=[name={username},password={password}]"]


def server_properties(pki: Pki, *, oauth: bool = False) -> list[str]:
    """Broker settings for the SASL_SSL and SSL listeners (PEM stores, no keytool), and
    with ``oauth`` for the OAUTH listener."""
    lines = [
        f"sasl.enabled.mechanisms={SCRAM_MECHANISM}",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
        "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={pki.server_keystore}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={pki.ca_file}",
        "listener.name.sasl_ssl.ssl.client.auth=none",
        "listener.name.ssl.ssl.client.auth=required",
    ]
    if oauth:  # the server side's default callback handler validates unsecured JWTs
        name = OAUTH_LISTENER.lower()
        lines += [
            f"listener.name.{name}.sasl.enabled.mechanisms={OAUTH_MECHANISM}",
            f"listener.name.{name}.oauthbearer.sasl.jaas.config="
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
        ]
    return lines
