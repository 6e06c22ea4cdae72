"""Configuration: env expansion, every error at once with its key path, secrets never shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

THREE_MISTAKES = """
server:
  port: "not-a-port"
kafka:
  bootstrap_servers: "${MISSING_BOOTSTRAP}"
connectors:
  gh:
    type: gitbub
    config:
      secret: "hunter2-very-secret"
"""


def test_three_mistakes_are_all_reported_with_key_paths(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(THREE_MISTAKES)
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    paths = sorted(p.path for p in err.value.problems)
    assert paths == ["connectors.gh.type", "kafka.bootstrap_servers", "server.port"]
    text = str(err.value)
    assert "MISSING_BOOTSTRAP" in text
    available = text.split("available: ")[1].split("\n")[0].split(", ")
    assert {"github", "webhook", "stripe", "slack"} <= set(available)
    assert "hunter2" not in text


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_cli_exits_non_zero_listing_all_three(tmp_path: Path, command: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(THREE_MISTAKES)
    proc = subprocess.run([sys.executable, "-m", "gateway", command, "--config", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
                          env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    for key in ("server.port", "kafka.bootstrap_servers", "connectors.gh.type"):
        assert key in proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_env_expansion_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("""
kafka:
  bootstrap_servers: "${KB:-localhost:9092}"
  topic: "${PREFIX}.{source}"
connectors:
  gh:
    type: github
    config:
      secrets: ["${S1}", "${S2:-fallback}"]
""")
    loaded = load_config(path, env={"PREFIX": "prod", "S1": "first-secret-value"})
    assert loaded.settings.kafka.bootstrap_servers == "localhost:9092"
    assert loaded.settings.kafka.topic == "prod.{source}"
    assert loaded.connectors["gh"].config.secret_values() == [b"first-secret-value", b"fallback"]
    assert "first-secret-value" not in repr(loaded.connectors["gh"].config)


def test_environment_overrides_bootstrap_and_data_dir(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("kafka: {bootstrap_servers: a:1}\n")
    loaded = load_config(path, env={"KAFKA_BOOTSTRAP_SERVERS": "b:2",
                                    "GATEWAY_DATA_DIR": str(tmp_path / "d")})
    assert loaded.settings.kafka.bootstrap_servers == "b:2"
    assert loaded.settings.audit_path == tmp_path / "d" / "audit.jsonl"


def test_connector_config_errors_carry_their_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("""
connectors:
  gh:
    type: github
    config: {}
  hook:
    type: webhook
    config: {secret: x, algorithm: md5, surprise: 1}
  limited:
    type: webhook
    config: {secret: x, rate_limit: {per_second: 0, burst: 0}}
""")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    paths = sorted(p.path for p in err.value.problems)
    assert paths == ["connectors.gh.config", "connectors.hook.config.algorithm",
                     "connectors.hook.config.surprise",
                     "connectors.limited.config.rate_limit.burst",
                     "connectors.limited.config.rate_limit.per_second"]


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("server:\n  port: [1,\n")
    with pytest.raises(ConfigError, match="line"):
        load_config(path, env={})


def test_example_config_is_valid() -> None:
    loaded = load_config(ROOT / "config" / "gateway.yaml", env={"GATEWAY_DEV": "1"})
    assert set(loaded.connectors) == {"github-main", "generic"}


def test_placeholder_secrets_are_refused_outside_development_mode() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "config" / "gateway.yaml", env={})
    paths = sorted(p.path for p in err.value.problems)
    assert paths == ["connectors.generic.config.secret", "connectors.github-main.config.secret"]
    assert "change-me" not in str(err.value)  # never the value itself
    # real secrets from the environment pass
    env = {"GITHUB_WEBHOOK_SECRET": "gh-9f3b2c71d0a4", "WEBHOOK_SECRET": "wh-51e0c8a2b7d6"}
    assert set(load_config(ROOT / "config" / "gateway.yaml", env=env).connectors) == {
        "github-main", "generic"}


def test_kraft_cluster_ids_never_start_with_a_dash() -> None:
    from devtools.localkafka import new_cluster_id

    ids = [new_cluster_id() for _ in range(5000)]  # ~78 would start with '-' unchecked
    assert not any(i.startswith("-") for i in ids)
    assert all(len(i) == 22 for i in ids)
