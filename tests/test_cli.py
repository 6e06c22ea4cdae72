"""The command line as a new user meets it: help on every option, a version, and plain
answers (never a traceback) when a file is missing, a broker unreachable, a topic not
there yet or a port taken."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.cli import build_parser, main
from tests.helpers import ROOT, base_config, write_config


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_every_option_and_argument_has_help() -> None:
    def missing(parser: argparse.ArgumentParser, path: str) -> list[str]:
        out = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out += missing(sub, f"{path} {name}")
            elif not action.help:
                out.append(f"{path} {action.option_strings or action.dest}")
        return out

    assert missing(build_parser(), "gateway") == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("gateway 0.")


def test_sign_with_a_missing_or_binary_body_file(tmp_path: Path) -> None:
    cfg = base_config("127.0.0.1:1", tmp_path / "data", "events.{source}")
    cfg["connectors"] = {"gh": {"type": "github", "config": {"secret": "gh-secret-cli-123"}}}
    path = write_config(tmp_path / "g.yaml", cfg)
    missing = run("gateway", "sign", "gh", "--config", str(path), "--body",
                  str(tmp_path / "nope.json"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
    assert "Traceback" not in missing.stderr
    binary = tmp_path / "body.bin"
    binary.write_bytes(bytes(range(256)))
    signed = run("gateway", "sign", "gh", "--config", str(path), "--body", str(binary))
    assert signed.returncode == 0, signed.stderr
    assert f"--data-binary @{binary}" in signed.stdout  # curl sends the exact bytes


def test_tail_with_the_broker_unreachable_says_so(tmp_path: Path) -> None:
    path = write_config(tmp_path / "g.yaml",
                        base_config("127.0.0.1:1", tmp_path / "data", "events.{source}"))
    out = run("gateway", "tail", "events.github", "--config", str(path))
    assert out.returncode == 2
    assert "cannot reach Kafka at 127.0.0.1:1" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.kafka
def test_tail_never_creates_a_topic_and_says_it_is_not_there_yet(
        kafka_bootstrap: str, tmp_path: Path, topic_prefix: str) -> None:
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    topic = f"{topic_prefix}.not-yet"
    path = write_config(tmp_path / "g.yaml",
                        base_config(kafka_bootstrap, tmp_path / "data", "events.{source}"))
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "tail", topic, "--config",
                             str(path)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(6)  # several checks of the cluster's topics
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert f"not on the cluster yet: {topic}" in err

    async def topics() -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            return list(await admin.list_topics())
        finally:
            await admin.close()

    assert topic not in asyncio.run(topics())


def test_a_local_broker_on_a_taken_port_fails_instead_of_reporting_ready() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run("devtools.localkafka", "--port", str(port), timeout=120)
    assert out.returncode == 2
    assert f"in use by another process: port(s) PLAINTEXT {port}" in out.stderr
