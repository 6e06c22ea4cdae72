"""Secured listeners of a local broker: SASL_SSL with SCRAM-SHA-512, and mutual TLS.

Inter-broker and controller traffic stays on PLAINTEXT and CONTROLLER; the secured
listeners are for clients only. Certificates come from ``tls.write_pki``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from ssl import SSLContext
from typing import Any

from devtools.kafka.tls import Pki

SCRAM_MECHANISM = "SCRAM-SHA-512"
_UNSAFE = frozenset(',[]="\\\' \t\r\n')  # kafka-storage's --add-scram syntax has no quoting


@dataclass(frozen=True)
class Security:
    """Asks for the secured listeners, besides PLAINTEXT: ``LocalKafka(security=Security())``.

    The SCRAM user is created when the storage is formatted; with ``password=None`` a
    random one is made for each broker (read it from ``kafka.secure.password``). With a
    kept ``data_dir``, give the password: the user is only made when storage is new."""

    username: str = "gateway"
    password: str | None = None

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


def scram_format_args(username: str, password: str) -> list[str]:
    """``kafka-storage format`` arguments that create the SCRAM user with the cluster."""
    return ["--add-scram", f"{SCRAM_MECHANISM}=[name={username},password={password}]"]


def server_properties(pki: Pki) -> list[str]:
    """Broker settings for the SASL_SSL and SSL listeners (PEM stores, no keytool)."""
    return [
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
