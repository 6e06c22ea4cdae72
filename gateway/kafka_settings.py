"""``kafka:`` in the configuration: where the cluster is, how to reach it securely, what
the gateway writes to it.

Security options carry aiokafka's names: ``security_protocol`` (``PLAINTEXT``, ``SSL``,
``SASL_PLAINTEXT``, ``SASL_SSL``), ``ssl_cafile`` / ``ssl_certfile`` / ``ssl_keyfile``
(PEM; a certificate and key for mutual TLS), ``ssl_check_hostname``, ``sasl_mechanism``
(``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512``, ``OAUTHBEARER``),
``sasl_plain_username`` / ``sasl_plain_password``, and for OAUTHBEARER an OAuth 2.0
client-credentials grant (``sasl_oauth_token_url``, ``_client_id``, ``_client_secret``,
``_scope``). Each can come from the environment (``ENVIRONMENT``), which wins over the
file, as ``KAFKA_BOOTSTRAP_SERVERS`` always has.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from gateway.topics import template_problem, topic_problem

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
# What a record's value is (``gateway.formats``): the envelope, or a CloudEvent.
Format = Literal["envelope", "cloudevents-binary", "cloudevents-structured"]

# Environment variable -> kafka.<key>; set and not empty, it replaces the file's value.
ENVIRONMENT: dict[str, str] = {
    "KAFKA_BOOTSTRAP_SERVERS": "bootstrap_servers",
    "KAFKA_SECURITY_PROTOCOL": "security_protocol",
    "KAFKA_SSL_CAFILE": "ssl_cafile",
    "KAFKA_SSL_CERTFILE": "ssl_certfile",
    "KAFKA_SSL_KEYFILE": "ssl_keyfile",
    "KAFKA_SSL_CHECK_HOSTNAME": "ssl_check_hostname",
    "KAFKA_SASL_MECHANISM": "sasl_mechanism",
    "KAFKA_SASL_USERNAME": "sasl_plain_username",
    "KAFKA_SASL_PASSWORD": "sasl_plain_password",
    "KAFKA_SASL_OAUTH_TOKEN_URL": "sasl_oauth_token_url",
    "KAFKA_SASL_OAUTH_CLIENT_ID": "sasl_oauth_client_id",
    "KAFKA_SASL_OAUTH_CLIENT_SECRET": "sasl_oauth_client_secret",
    "KAFKA_SASL_OAUTH_SCOPE": "sasl_oauth_scope",
}


def from_environment(kafka: object, env: dict[str, str]) -> object:
    """``kafka:`` from the file with the environment's values laid over it."""
    overrides = {key: env[var] for var, key in ENVIRONMENT.items() if env.get(var)}
    if not overrides:
        return kafka
    return {**(kafka if isinstance(kafka, dict) else {}), **overrides}


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TopicSpec(BaseModel):
    """A topic the gateway writes (``name``), or the settings of every such topic a glob
    matches (``pattern``): partitions, replication factor and topic configs. Unset
    numbers: the broker's defaults when ``gateway topics create`` creates it, not checked
    by ``gateway topics check``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    pattern: str | None = None
    partitions: int | None = Field(default=None, ge=1)
    replication_factor: int | None = Field(default=None, ge=1)
    configs: dict[str, str] = Field(default_factory=dict)
    format: Format | None = None  # unset: kafka.format

    @field_validator("name")
    @classmethod
    def _legal(cls, value: str | None) -> str | None:
        if value is not None and (problem := topic_problem(value)):
            raise ValueError(problem)
        return value

    @field_validator("configs", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        """Kafka configs are strings; YAML writes numbers and booleans as such."""
        if isinstance(value, dict):
            return {str(k): (str(v).lower() if isinstance(v, bool) else str(v))
                    for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _one_of(self) -> TopicSpec:
        if (self.name is None) == (self.pattern is None):
            raise ValueError("give exactly one of name and pattern")
        return self


class RegistryAuth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1)
    password: SecretStr


class SchemaRegistryConfig(BaseModel):
    """A Confluent-compatible Schema Registry (``gateway.schema_registry``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    basic_auth: RegistryAuth | None = None
    bearer_token: SecretStr | None = None
    # TopicNameStrategy (<topic>-value), RecordNameStrategy (<record name>) or
    # TopicRecordNameStrategy (<topic>-<record name>), as Confluent's serializers name them.
    subject_strategy: Literal["topic", "record", "topic_record"] = "topic"
    timeout_seconds: float = Field(default=10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http or https URL")
        if parts.username or parts.password:
            raise ValueError("credentials go in basic_auth, not in the URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _auth(self) -> SchemaRegistryConfig:
        if self.basic_auth is not None and self.bearer_token is not None:
            raise ValueError("give basic_auth or bearer_token, not both")
        parts = urlsplit(self.url)
        if ((self.basic_auth or self.bearer_token) and parts.scheme != "https"
                and not _loopback(parts.hostname)):
            raise ValueError("credentials are sent only over https (http only on the loopback"
                             " interface)")
        return self


class KafkaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str = "localhost:9092"
    topic: str = "events.{source}"
    dead_letter_topic: str = "events.dlq"
    # What the records' values are; a kafka.topics entry may say otherwise for its topics.
    format: Format = "envelope"
    # Set: every event's value is framed for this registry (magic byte, schema id, JSON).
    schema_registry: SchemaRegistryConfig | None = None
    client_id: str = "event-gateway"
    linger_ms: int = Field(default=5, ge=0)
    request_timeout_ms: int = Field(default=15_000, gt=0)
    compression_type: str | None = None
    # The largest record the broker takes (its message.max.bytes; a topic's
    # max.message.bytes if lower). A delivery whose event would be larger is refused
    # with 413 before it is accepted: acknowledged, it could never be published.
    max_message_bytes: int = Field(default=1_048_576, ge=4096)
    # A record whose topic the cluster still does not have after this long (and does not
    # create) goes to the dead-letter topic instead of blocking the ones behind it.
    unknown_topic_timeout_seconds: float = Field(default=120.0, ge=0)

    # The topics the gateway writes, as they should be (``gateway topics check|create``).
    topics: list[TopicSpec] = Field(default_factory=list)
    # At startup, when a topic the gateway writes is missing and the brokers do not
    # create topics: ``fail`` refuses to start, ``warn`` logs it and starts (its events
    # wait, then go to the dead-letter topic).
    missing_topics: Literal["fail", "warn"] = "warn"

    security_protocol: SecurityProtocol = "PLAINTEXT"
    ssl_cafile: str | None = None  # PEM; unset: the system's trusted CAs
    ssl_certfile: str | None = None  # PEM client certificate (chain), for mutual TLS
    ssl_keyfile: str | None = None  # PEM private key of ssl_certfile
    ssl_check_hostname: bool = True
    sasl_mechanism: SaslMechanism | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    sasl_oauth_token_url: str | None = None
    sasl_oauth_client_id: str | None = None
    sasl_oauth_client_secret: SecretStr | None = None
    sasl_oauth_scope: str | None = None

    def spec_for(self, topic: str) -> TopicSpec | None:
        """The ``topics`` entry for ``topic``: its own, else the first pattern matching."""
        for spec in self.topics:
            if spec.name == topic:
                return spec
        return next((s for s in self.topics
                     if s.pattern and fnmatch.fnmatchcase(topic, s.pattern)), None)

    def format_for(self, topic: str) -> Format:
        spec = self.spec_for(topic)
        return spec.format if spec is not None and spec.format is not None else self.format

    @field_validator("topic", "dead_letter_topic")
    @classmethod
    def _legal_topic(cls, value: str) -> str:
        problem = template_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is not None and not os.access(value, os.R_OK):
            raise ValueError(f"cannot read the file {value!r}")
        return value

    @field_validator("sasl_oauth_token_url")
    @classmethod
    def _token_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if not parts.hostname or not (parts.scheme == "https" or (
                parts.scheme == "http" and _loopback(parts.hostname))):
            raise ValueError("must be an https URL (http only on the loopback interface):"
                             " the client secret is sent there")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> KafkaConfig:
        problems = []
        tls = self.security_protocol in ("SSL", "SASL_SSL")
        sasl = self.security_protocol.startswith("SASL_")
        if not tls and (self.ssl_cafile or self.ssl_certfile or self.ssl_keyfile):
            problems.append("ssl_cafile, ssl_certfile and ssl_keyfile need security_protocol"
                            " SSL or SASL_SSL")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            problems.append("ssl_certfile and ssl_keyfile go together (mutual TLS)")
        if sasl and self.sasl_mechanism is None:
            problems.append(f"security_protocol {self.security_protocol} needs sasl_mechanism")
        if not sasl and self.sasl_mechanism is not None:
            problems.append("sasl_mechanism needs security_protocol SASL_PLAINTEXT or"
                            " SASL_SSL")
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and not (
                self.sasl_plain_username and self.sasl_plain_password):
            problems.append(f"sasl_mechanism {self.sasl_mechanism} needs sasl_plain_username"
                            " and sasl_plain_password")
        if self.sasl_mechanism == "OAUTHBEARER" and not (
                self.sasl_oauth_token_url and self.sasl_oauth_client_id
                and self.sasl_oauth_client_secret):
            problems.append("sasl_mechanism OAUTHBEARER needs sasl_oauth_token_url,"
                            " sasl_oauth_client_id and sasl_oauth_client_secret")
        if problems:
            raise ValueError("; ".join(problems))
        return self
