"""The gateway on a broker's secured listeners: SASL_SSL with SCRAM-SHA-512, and mutual
TLS. Events arrive through each. A wrong password, an untrusted CA or a missing client
certificate: /readyz says not ready and why (no secret), deliveries are still answered
202 and kept, and they are published once the configuration is fixed and the gateway
restarted on the same data."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.kafka.security import SecureAccess
from tests.helpers import base_config, consume, thread_server, write_config
from tests.load import signed, webhook_connector

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def scram(access: SecureAccess, *, password: str | None = None) -> dict[str, Any]:
    return {"bootstrap_servers": access.sasl_ssl, "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": access.username,
            "sasl_plain_password": password or access.password,
            "ssl_cafile": str(access.ca_file)}


def mtls(access: SecureAccess, *, ca: Path | None = None, cert: bool = True
         ) -> dict[str, Any]:
    kafka: dict[str, Any] = {"bootstrap_servers": access.ssl, "security_protocol": "SSL",
                             "ssl_cafile": str(ca or access.ca_file)}
    if cert:
        kafka.update(ssl_certfile=str(access.client_cert), ssl_keyfile=str(access.client_key))
    return kafka


def config(tmp_path: Path, topic: str, kafka: dict[str, Any]) -> Path:
    cfg = base_config("unused:9092", tmp_path / "data", topic)
    cfg["kafka"].update(kafka)
    cfg["connectors"] = {"load": webhook_connector()}
    return write_config(tmp_path / f"gateway-{uuid.uuid4().hex[:6]}.yaml", cfg)


def deliver(url: str, count: int) -> list[str]:
    ids = []
    for seq in range(count):
        body, headers = signed(f"sec-{uuid.uuid4().hex}", seq=seq)
        answer = httpx.post(f"{url}/webhooks/load", content=body, headers=headers, timeout=10)
        assert answer.status_code == 202, answer.text
        ids.extend(answer.json()["event_ids"])
    return ids


def readiness(url: str, timeout: float = 30) -> dict[str, Any]:
    """/readyz once the relay has tried the cluster (ok, or an error other than 'not
    connected yet')."""
    deadline = time.monotonic() + timeout
    while True:
        ready: dict[str, Any] = httpx.get(f"{url}/readyz", timeout=5).json()
        error = ready["kafka"]["error"]
        if ready["kafka"]["ok"] or (error and "not connected yet" not in error):
            return ready
        assert time.monotonic() < deadline, ready
        time.sleep(0.3)


def arrives(plaintext: str, config_path: Path, topic: str) -> None:
    """Five deliveries through the gateway reach ``topic`` (read back over ``plaintext``),
    and /readyz is ready."""
    with thread_server(config_path) as server:
        ids = deliver(server.url, 5)
        got = {r.value for r in consume(plaintext, topic, expect=5)}
        assert len(got) == 5
        ready = readiness(server.url)
        assert ready["ready"], ready
        assert ready["kafka"]["ok"]
    assert all(any(i.encode() in v for v in got) for i in ids)


@pytest.mark.parametrize("listener", ["sasl_ssl", "mtls"])
def test_events_arrive_through_each_secured_listener(
        secure_kafka: SecureAccess, tmp_path: Path, listener: str) -> None:
    access = secure_kafka
    topic = f"sec-{listener}-{uuid.uuid4().hex[:6]}"
    kafka = scram(access) if listener == "sasl_ssl" else mtls(access)
    arrives(access.plaintext, config(tmp_path, topic, kafka), topic)


# aiokafka closes a TLS connection whose SASL login was refused without waiting for the
# close: when the server thread's loop ends right after, the socket is collected open.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(("broken", "reason"), [
    ("password", "SASL authentication failed"),
    ("ca", "TLS: the brokers' certificate is not trusted"),
    ("client_cert", "client certificate"),
])
def test_a_refused_configuration_is_not_ready_keeps_events_and_publishes_once_fixed(
        secure_kafka: SecureAccess, tmp_path: Path, broken: str, reason: str) -> None:
    access = secure_kafka
    wrong = {"password": scram(access, password="not-the-password-1"),
             "ca": mtls(access, ca=access.other_ca_file),
             "client_cert": mtls(access, cert=False)}[broken]
    topic = f"sec-{broken}-{uuid.uuid4().hex[:6]}"
    with thread_server(config(tmp_path, topic, wrong)) as server:
        ids = deliver(server.url, 3)  # durable in the buffer, answered 202
        ready = readiness(server.url)
        assert not ready["ready"], ready
        assert ready["kafka"]["refused"]
        assert reason in ready["reason"], ready["reason"]
        assert access.password not in str(ready)
        assert "not-the-password-1" not in str(ready)
        assert ready["buffer"]["events"] == 3
    fixed = scram(access) if broken == "password" else mtls(access)
    with thread_server(config(tmp_path, topic, fixed)) as server:
        values = [r.value for r in consume(access.plaintext, topic, expect=3)]
        assert readiness(server.url)["ready"]
    assert sorted(i for i in ids if any(i.encode() in v for v in values)) == sorted(ids)
