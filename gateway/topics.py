"""Kafka topic names: what Kafka accepts, what a template may say, and which of the
configured topics exist on the broker.

A legal topic name is 1 to 249 characters of ``[A-Za-z0-9._-]``, and neither ``.`` nor
``..``. Templates (``kafka.topic``, a connector's ``topic``) may use ``{source}``,
``{type}`` and ``{connector_id}``; any other placeholder is a configuration error. A
name without placeholders is *fixed*: the gateway checks at startup that it exists.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

MAX_TOPIC_LENGTH = 249
CHECK_TIMEOUT = 10.0  # seconds for each request of a topic check
PLACEHOLDERS = ("source", "type", "connector_id")
_LEGAL = re.compile(r"[A-Za-z0-9._-]+")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def topic_problem(name: str) -> str | None:
    """Why Kafka would refuse ``name`` as a topic, or None when it is legal."""
    if not name:
        return "a topic name must not be empty"
    if len(name) > MAX_TOPIC_LENGTH:
        return f"a topic name has at most {MAX_TOPIC_LENGTH} characters ({len(name)} given)"
    if name in (".", ".."):
        return "a topic name cannot be '.' or '..'"
    if not _LEGAL.fullmatch(name):
        return "a topic name may only hold letters, digits, '.', '_' and '-'"
    return None


def template_problem(template: str) -> str | None:
    """Why ``template`` cannot make legal topic names, or None."""
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)}
                     - set(PLACEHOLDERS))
    if unknown:
        return (f"unknown placeholder {{{unknown[0]}}} in the topic template; use "
                + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))
    # Placeholders are filled with safe characters at run time: check the rest.
    return topic_problem(_PLACEHOLDER.sub("x", template))


def is_fixed(template: str) -> bool:
    return _PLACEHOLDER.search(template) is None


def expand(template: str, *, source: str, type: str, connector_id: str) -> str:
    """A template filled in; characters Kafka refuses become ``_``, and the name is cut
    to Kafka's length limit (``.``/``..`` cannot result: templates are checked)."""
    name = template.replace("{source}", source).replace("{type}", type).replace(
        "{connector_id}", connector_id)
    name = _UNSAFE.sub("_", name)[:MAX_TOPIC_LENGTH]
    return name if topic_problem(name) is None else "_" + name[:MAX_TOPIC_LENGTH - 1]


async def broker_configs(admin: Any, node: int | str, *keys: str,
                         wait_seconds: float = CHECK_TIMEOUT) -> dict[str, str]:
    """``keys`` of broker ``node``'s configuration, as far as it says them (``admin`` is a
    started aiokafka admin client)."""
    answers = await asyncio.wait_for(admin.describe_configs([ConfigResource(
        ConfigResourceType.BROKER, str(node), configs=dict.fromkeys(keys))]), wait_seconds)
    return {entry[0]: entry[1] for answer in answers for resource in answer.resources
            for entry in resource[4]}


@dataclass(frozen=True)
class TopicCheck:
    missing: list[str]
    auto_create: bool | None  # None: the broker would not say


async def check_topics(client: Any, names: Iterable[str], make_admin: Callable[[], Any]
                       ) -> TopicCheck:
    """Which of ``names`` the cluster lacks, and whether its brokers create topics on
    first use (``auto.create.topics.enable``). ``client`` is a started aiokafka client;
    ``make_admin`` makes an admin client for the same cluster."""
    timeout = CHECK_TIMEOUT
    metadata = await asyncio.wait_for(client.fetch_all_metadata(), timeout)
    existing = set(metadata.topics())
    missing = sorted(set(names) - existing)
    auto: bool | None = None
    if missing:
        admin = make_admin()
        try:
            await asyncio.wait_for(admin.start(), timeout)
            node = next(iter(metadata.brokers())).nodeId
            said = await broker_configs(admin, node, "auto.create.topics.enable",
                                        wait_seconds=timeout)
            if "auto.create.topics.enable" in said:
                auto = said["auto.create.topics.enable"] == "true"
        except Exception:  # the answer is optional: "would not say"
            auto = None
        finally:
            await admin.close()
    return TopicCheck(missing, auto)

