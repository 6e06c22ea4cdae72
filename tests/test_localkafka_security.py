"""The launcher's secured listeners, through aiokafka (the gateway's client).

SASL_SSL with SCRAM-SHA-512 and mutual TLS carry records both ways. A wrong password, an
untrusted CA and a missing (or foreign) client certificate are refused at once:
``producer.start()`` raises ``KafkaConnectionError("Unable to bootstrap from [...]")``
within a second, and the reason is only in aiokafka's ERROR log record ('Unable connect
to "host:port": <exception>'), whose last argument is the exception these tests pin down.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed
from aiokafka.helpers import create_ssl_context

from devtools.kafka import SecureAccess, Security

Config = Callable[[SecureAccess], dict[str, Any]]


async def round_trip(config: dict[str, Any], topic: str, value: bytes) -> list[bytes]:
    producer = AIOKafkaProducer(acks="all", request_timeout_ms=15000, **config)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", group_id=None,
                                request_timeout_ms=15000, **config)
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=15000)
    finally:
        await consumer.stop()
    return [record.value for records in batch.values() for record in records]


@pytest.mark.kafka
def test_sasl_ssl_with_scram_sha_512_produces_and_consumes(secure_kafka: SecureAccess) -> None:
    config = {"bootstrap_servers": secure_kafka.sasl_ssl, "security_protocol": "SASL_SSL",
              "sasl_mechanism": "SCRAM-SHA-512",
              "sasl_plain_username": secure_kafka.username,
              "sasl_plain_password": secure_kafka.password,
              "ssl_context": create_ssl_context(cafile=secure_kafka.ca_file)}
    assert config == {**secure_kafka.sasl_ssl_config(), "ssl_context": config["ssl_context"]}
    assert secure_kafka.password not in repr(secure_kafka)
    topic = f"scram-{uuid.uuid4().hex[:8]}"
    assert asyncio.run(round_trip(config, topic, b"over SASL_SSL")) == [b"over SASL_SSL"]


@pytest.mark.kafka
def test_mutual_tls_produces_and_consumes(secure_kafka: SecureAccess) -> None:
    context = create_ssl_context(cafile=secure_kafka.ca_file,
                                 certfile=secure_kafka.client_cert,
                                 keyfile=secure_kafka.client_key)
    config = {"bootstrap_servers": secure_kafka.ssl, "security_protocol": "SSL",
              "ssl_context": context}
    topic = f"mtls-{uuid.uuid4().hex[:8]}"
    assert asyncio.run(round_trip(config, topic, b"over mTLS")) == [b"over mTLS"]


def _sasl(password: Callable[[SecureAccess], str], cafile: Callable[[SecureAccess], Any]
          ) -> Config:
    return lambda s: {"bootstrap_servers": s.sasl_ssl, "security_protocol": "SASL_SSL",
                      "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": s.username,
                      "sasl_plain_password": password(s),
                      "ssl_context": create_ssl_context(cafile=cafile(s))}


def _mtls(cafile: Callable[[SecureAccess], Any],
          cert: Callable[[SecureAccess], tuple[Any, Any] | None]) -> Config:
    def config(s: SecureAccess) -> dict[str, Any]:
        pair = cert(s)
        context = create_ssl_context(cafile=cafile(s)) if pair is None else \
            create_ssl_context(cafile=cafile(s), certfile=pair[0], keyfile=pair[1])
        return {"bootstrap_servers": s.ssl, "security_protocol": "SSL",
                "ssl_context": context}
    return config


# (how the client is configured, the exception aiokafka logs, a pattern of its text)
REFUSALS: dict[str, tuple[Config, type[BaseException], str]] = {
    "wrong password": (
        _sasl(lambda s: s.password + "-wrong", lambda s: s.ca_file),
        SaslAuthenticationFailed,
        r"\[Error 58\] SaslAuthenticationFailed: Authentication failed during "
        r"authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"),
    "SASL_SSL, broker's CA not trusted": (
        _sasl(lambda s: s.password, lambda s: s.other_ca_file),
        ssl.SSLCertVerificationError,
        r"\[SSL: CERTIFICATE_VERIFY_FAILED\] certificate verify failed"),
    "mTLS, broker's CA not trusted": (
        _mtls(lambda s: s.other_ca_file, lambda s: (s.client_cert, s.client_key)),
        ssl.SSLCertVerificationError,
        r"\[SSL: CERTIFICATE_VERIFY_FAILED\] certificate verify failed"),
    "mTLS, no client certificate": (
        _mtls(lambda s: s.ca_file, lambda s: None),
        KafkaConnectionError, r"Connection at 127\.0\.0\.1:\d+ closed"),
    "mTLS, client certificate of an untrusted CA": (
        _mtls(lambda s: s.ca_file, lambda s: (s.other_client_cert, s.other_client_key)),
        KafkaConnectionError, r"Connection at 127\.0\.0\.1:\d+ closed"),
}


async def start_producer(config: dict[str, Any]) -> None:
    producer = AIOKafkaProducer(acks="all", request_timeout_ms=30000, **config)
    try:
        await producer.start()
    finally:
        await producer.stop()
        # After a refused SASL_SSL login aiokafka closes the TLS connection without waiting
        # for its shutdown: a loop closed at once leaks the socket (a ResourceWarning,
        # about half the time). Letting the loop run a moment longer lets it close.
        await asyncio.sleep(0.5)


@pytest.mark.kafka
@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_clients_fail_fast_and_the_log_says_why(
        secure_kafka: SecureAccess, case: str, caplog: pytest.LogCaptureFixture) -> None:
    config, logged_type, logged_text = REFUSALS[case]
    caplog.set_level(logging.ERROR, logger="aiokafka")
    started = time.monotonic()
    with pytest.raises(KafkaConnectionError, match=r"Unable to bootstrap from \["):
        asyncio.run(start_producer(config(secure_kafka)))
    assert time.monotonic() - started < 10, "refused, but only after a timeout"
    reasons = [r.args[-1] for r in caplog.records
               if r.name.startswith("aiokafka") and r.msg.startswith("Unable connect to")
               and isinstance(r.args, tuple)]
    assert reasons, caplog.text
    reason = reasons[0]
    assert isinstance(reason, logged_type), repr(reason)
    assert re.search(logged_text, str(reason)), str(reason)
    if logged_type is KafkaConnectionError:  # the TLS alert the broker sent
        assert isinstance(reason.__cause__, ssl.SSLError), repr(reason.__cause__)
        assert re.search(r"ALERT_(BAD_CERTIFICATE|CERTIFICATE_REQUIRED|CERTIFICATE_UNKNOWN"
                         r"|UNKNOWN_CA)", str(reason.__cause__)), str(reason.__cause__)


@pytest.mark.parametrize("password", ["a,b", "a=b", "a]b", "a b", ""])
def test_scram_credentials_kafka_storage_cannot_parse_are_refused(password: str) -> None:
    with pytest.raises(ValueError, match="SCRAM password"):
        Security(password=password)
