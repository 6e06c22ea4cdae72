"""The README's consumer examples ("For consumers") work as written: each one runs, as is
but for the broker, topic, group and registry addresses, against records the gateway
published to a real broker (and framed for a real registry)."""

from __future__ import annotations

import re
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
import pytest

from tests.helpers import ROOT, accepted_github, base_config, thread_server, write_config

SECRET = "readme-github-secret"
pytestmark = pytest.mark.kafka


def examples() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## For consumers"):]
    section = section[:section.index("\n## ", 3)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


class _Seen(Exception):
    """The example printed its first event."""


def run(example: str, *, bootstrap: str, topic: str, registry: str = "") -> tuple[Any, ...]:
    """Runs ``example`` until its first ``print``; returns what it printed."""
    code = (example.replace("localhost:9092", bootstrap)
            .replace('"events.github"', repr(topic))
            .replace('"billing"', repr(f"readme-{uuid.uuid4().hex}"))
            .replace("http://localhost:8081", registry))
    printed: list[tuple[Any, ...]] = []

    def first(*args: Any) -> None:
        printed.append(args)
        raise _Seen

    def too_long(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError("the example printed nothing in 45 s")

    namespace: dict[str, Any] = {"print": first}
    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(45)
    try:
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    except _Seen:
        pass
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        namespace["consumer"].close()
        if "registry" in namespace:
            namespace["registry"].__exit__(None, None, None)
    return printed[0]


@pytest.fixture
def published(kafka_bootstrap: str, data_dir: Path, topic_prefix: str, tmp_path: Path,
              pull_request_body: bytes) -> Iterator[dict[str, str]]:
    """One event on each of three topics: envelope, CloudEvents binary and structured."""
    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.{{connector_id}}")
    cfg["kafka"]["topics"] = [
        {"name": f"{topic_prefix}.binary", "format": "cloudevents-binary"},
        {"name": f"{topic_prefix}.structured", "format": "cloudevents-structured"}]
    cfg["connectors"] = {name: {"type": "github", "config": {"secret": SECRET}}
                         for name in ("envelope", "binary", "structured")}
    with thread_server(write_config(tmp_path / "gateway.yaml", cfg)) as server:
        yield {name: accepted_github(server.url, name, pull_request_body, SECRET)
               for name in ("envelope", "binary", "structured")}


def test_the_readme_has_the_three_examples() -> None:
    assert len(examples()) == 3


def test_the_envelope_and_cloudevents_examples_read_what_the_gateway_published(
        published: dict[str, str], kafka_bootstrap: str, topic_prefix: str,
        pull_request_body: bytes) -> None:
    envelope_example, cloudevents_example, _ = examples()
    payload = orjson.loads(pull_request_body)
    assert run(envelope_example, bootstrap=kafka_bootstrap,
               topic=f"{topic_prefix}.envelope") == (
        published["envelope"], "pull_request.opened", payload)
    for mode in ("binary", "structured"):
        assert run(cloudevents_example, bootstrap=kafka_bootstrap,
                   topic=f"{topic_prefix}.{mode}") == (
            published[mode], "pull_request.opened", mode, payload)


def test_the_schema_registry_example_reads_framed_values(
        kafka_bootstrap: str, data_dir: Path, topic_prefix: str, tmp_path: Path,
        registry: str, pull_request_body: bytes) -> None:
    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.{{source}}")
    cfg["kafka"]["schema_registry"] = {"url": registry}
    cfg["connectors"] = {"github": {"type": "github", "config": {"secret": SECRET}}}
    with thread_server(write_config(tmp_path / "gateway.yaml", cfg)) as server:
        event_id = accepted_github(server.url, "github", pull_request_body, SECRET)
        assert run(examples()[2], bootstrap=kafka_bootstrap, topic=f"{topic_prefix}.github",
                   registry=registry) == (event_id, "pull_request.opened",
                                          orjson.loads(pull_request_body))
