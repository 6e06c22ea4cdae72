"""Test session: a real Kafka broker (started here unless KAFKA_BOOTSTRAP_SERVERS is set)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.kafka import LocalKafkaCluster, SecureAccess, Security
from devtools.localkafka import LocalKafka
from devtools.localredis import LocalRedis
from devtools.registry import LocalRegistry


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    with LocalKafka() as kafka:
        yield kafka.bootstrap


@pytest.fixture(scope="session")
def registry() -> Iterator[str]:
    """The Confluent-compatible API of a Schema Registry (Apicurio, started here unless
    SCHEMA_REGISTRY_URL is set): ``http://127.0.0.1:PORT/apis/ccompat/v7``."""
    external = os.environ.get("SCHEMA_REGISTRY_URL")
    if external:
        yield external
        return
    with LocalRegistry() as local:
        yield local.url


@pytest.fixture(scope="session")
def secure_kafka() -> Iterator[SecureAccess]:
    """A broker of the session's own (started on first use) with, besides PLAINTEXT, a
    SASL_SSL listener (SCRAM-SHA-512 user) and an SSL listener requiring a client
    certificate: addresses, PEM files and credentials as a ``SecureAccess``."""
    with LocalKafka(security=Security()) as kafka:
        yield kafka.secure


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalKafkaCluster]:
    """A three-node KRaft cluster of the module's own, which its tests may kill, stop and
    restart node by node."""
    kafka = LocalKafkaCluster(3)
    try:
        kafka.start()
        yield kafka
    finally:
        kafka.close()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[LocalRedis]:
    """A Redis server of the test's own (Debian's redis-server), stopped after it."""
    server = LocalRedis(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def topic_prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def pull_request_body() -> bytes:
    return (Path(__file__).parent / "fixtures" / "github_pull_request_opened.json").read_bytes()


@pytest.fixture(scope="module")
def sns() -> Iterator[tuple[Any, Any]]:
    """A fake AWS SNS signer and a real local server for its signing certificate."""
    from tests.test_aws_sns import CertServer, Fake

    fake = Fake()
    server = CertServer(fake.pem)
    try:
        yield fake, server
    finally:
        server.close()


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for a module's async connector hooks."""
    with asyncio.Runner() as r:
        yield r


@pytest.fixture
def keys() -> Iterator[Any]:
    """A local key server the catalogue's key-fetching connectors are pointed at."""
    from tests.catalog_support import KeyServer

    with KeyServer() as server:
        yield server


@pytest.fixture(scope="module")
def google() -> Any:
    """A Google-like OIDC token issuer (generated RSA key)."""
    from tests.catalog_support import Google

    return Google()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that needs a broker (``kafka_bootstrap``, ``secure_kafka``, ``cluster``; directly or
    through another fixture) is marked ``kafka``, so that ``-m "not kafka"`` runs without one:
    checked here, before ``-m`` deselects anything, for every collected test."""
    brokers = {"kafka_bootstrap", "secure_kafka", "cluster"}
    unmarked = [item.nodeid for item in items
                if brokers & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("kafka") is None]
    if unmarked:
        raise pytest.UsageError(
            "these tests use a broker fixture without @pytest.mark.kafka (or a "
            "module's pytestmark = pytest.mark.kafka):\n  " + "\n  ".join(unmarked))


@pytest.fixture(autouse=True)
def _fresh_connector_metrics() -> None:
    """Per-connector counters are process-wide (``gateway.metrics.METRICS``): a test
    starts without the counts another test's connector of the same id left."""
    from gateway.metrics import METRICS

    METRICS.connectors.clear()
    METRICS.rejections.clear()
