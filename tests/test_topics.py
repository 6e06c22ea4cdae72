"""Topic provisioning on a real broker that does not create topics: ``gateway topics
check`` reports what is missing or differs from ``kafka.topics``, ``gateway topics
create`` creates the missing ones with their declared settings, and ``gateway run``
refuses to start without them when ``kafka.missing_topics: fail``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from devtools.localkafka import LocalKafka
from tests.helpers import write_config

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def strict_kafka() -> Iterator[LocalKafka]:
    with LocalKafka(auto_create_topics=False) as kafka:
        yield kafka


def config(tmp_path: Path, bootstrap: str, **kafka: Any) -> Path:
    return write_config(tmp_path / "gateway.yaml", {
        "data_dir": str(tmp_path / "data"),
        "kafka": {"bootstrap_servers": bootstrap, "topic": "prov.{source}",
                  "dead_letter_topic": "prov.dlq", **kafka},
        "connectors": {
            "hooks": {"type": "webhook", "config": {"secret": "a-real-secret-value-1",
                                                    "source": "orders"}},
            "typed": {"type": "webhook", "config": {"secret": "a-real-secret-value-2",
                                                    "topic": "prov.by-type.{type}"}}}})


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "GATEWAY_"))}
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, timeout=120, env=env, cwd=ROOT, check=False)


def describe(bootstrap: str, topic: str) -> tuple[int, dict[str, str]]:
    async def ask() -> tuple[int, dict[str, str]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            [info] = [t for t in await admin.describe_topics() if t["topic"] == topic]
            [answer] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic)])
            configs = {e[0]: e[1] for r in answer.resources for e in r[4]}
            return len(info["partitions"]), configs
        finally:
            await admin.close()

    return asyncio.run(ask())


DECLARED = [
    {"name": "prov.dlq", "partitions": 1, "configs": {"retention.ms": 1_209_600_000}},
    {"pattern": "prov.*", "partitions": 3, "replication_factor": 1,
     "configs": {"retention.ms": 604_800_000, "cleanup.policy": "delete"}},
]


def test_check_create_and_the_startup_refusal(strict_kafka: LocalKafka, tmp_path: Path
                                              ) -> None:
    path = config(tmp_path, strict_kafka.bootstrap, topics=DECLARED, missing_topics="fail")
    check = gateway("topics", "check", "--config", str(path))
    assert check.returncode == 1, check.stderr
    assert "missing  prov.dlq" in check.stdout
    assert "missing  prov.orders" in check.stdout
    assert "dynamic  prov.by-type.{type}" in check.stdout

    refused = gateway("run", "--config", str(path), "--port", "0")
    assert refused.returncode == 2
    assert "prov.dlq, prov.orders" in refused.stderr
    assert "gateway topics create" in refused.stderr

    created = gateway("topics", "create", "--config", str(path))
    assert created.returncode == 0, created.stderr
    assert "created  prov.orders" in created.stdout
    assert "ok       prov.orders" in created.stdout
    partitions, configs = describe(strict_kafka.bootstrap, "prov.orders")
    assert partitions == 3
    assert configs["retention.ms"] == "604800000"
    assert describe(strict_kafka.bootstrap, "prov.dlq")[1]["retention.ms"] == "1209600000"
    assert gateway("topics", "check", "--config", str(path)).returncode == 0

    changed = [DECLARED[0], {**DECLARED[1], "partitions": 6,
                             "configs": {"retention.ms": 1000, "cleanup.policy": "delete"}}]
    differs = gateway("topics", "check", "--config",
                      str(config(tmp_path, strict_kafka.bootstrap, topics=changed)))
    assert differs.returncode == 1
    assert "differs  prov.orders: partitions: 3, declared 6; retention.ms: '604800000'," \
           " declared '1000'" in differs.stdout
    assert "not changed by the gateway" in differs.stderr


def test_an_unreachable_cluster_is_said_plainly(tmp_path: Path) -> None:
    from devtools.localkafka import free_port

    path = config(tmp_path, f"127.0.0.1:{free_port()}", request_timeout_ms=3000)
    check = gateway("topics", "check", "--config", str(path))
    assert check.returncode == 2
    assert "cannot reach Kafka at 127.0.0.1:" in check.stderr


def test_check_config_connect_says_whether_kafka_answers(strict_kafka: LocalKafka,
                                                         tmp_path: Path) -> None:
    from devtools.localkafka import free_port

    ok = gateway("check-config", "--connect", "--config",
                 str(config(tmp_path, strict_kafka.bootstrap)))
    assert ok.returncode == 0, ok.stderr
    assert f"ok: connected to Kafka at {strict_kafka.bootstrap} (PLAINTEXT): 1 broker(s)" \
        in ok.stdout
    down = gateway("check-config", "--connect", "--config",
                   str(config(tmp_path, f"127.0.0.1:{free_port()}", request_timeout_ms=3000)))
    assert down.returncode == 3
    assert "cannot connect to Kafka at 127.0.0.1:" in down.stderr
