"""Topic provisioning: the topics the gateway writes, as ``kafka.topics`` declares them,
against what the cluster has.

The names the gateway will write and can know before any event arrives are *planned*:
the dead-letter topic, every topic name without placeholders, and the templates whose
only placeholders are ``{source}`` and ``{connector_id}``, filled in for each connector
that uses them (for a push source, with each source its ``sources`` allows). Templates
with ``{type}`` (or a push source's ``{source}`` without an allow-list) depend on the
events and cannot be listed;
``kafka.topics`` entries with a ``pattern`` (a glob: ``events.*``) give their settings to
whatever name they match, planned or created by the broker later.

``inspect`` reports each planned topic as ok, missing or differing (fewer partitions,
another replication factor, a config value that is not the declared one); ``create``
creates the missing ones with their declared settings (the broker's defaults where
none is declared). ``gateway topics check`` / ``gateway topics create`` run them, and
``gateway run`` runs the check at startup (``kafka.missing_topics``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from connectors.base import PushSource
from gateway.config import LoadedConfig
from gateway.errors import GatewayError
from gateway.kafka_settings import TopicSpec
from gateway.topics import broker_configs, expand, is_fixed

TIMEOUT = 15.0  # seconds for each admin request
TOPIC_ALREADY_EXISTS = 36  # Kafka's error code: created meanwhile, by someone else


class ProvisioningError(GatewayError):
    """The cluster refused to create a topic (its reason: replication factor larger than
    the brokers, not authorized, a config it does not know, ...)."""


@dataclass(frozen=True)
class Planned:
    name: str
    spec: TopicSpec | None  # the kafka.topics entry that applies, if any


@dataclass
class TopicState:
    name: str
    status: str  # "ok", "missing", "differs"
    differences: list[str] = field(default_factory=list)


@dataclass
class Report:
    topics: list[TopicState]
    dynamic: list[str]  # templates that depend on event types: not checkable

    @property
    def missing(self) -> list[str]:
        return [t.name for t in self.topics if t.status == "missing"]

    @property
    def differing(self) -> list[TopicState]:
        return [t for t in self.topics if t.status == "differs"]


def planned(loaded: LoadedConfig) -> tuple[list[Planned], list[str]]:
    """The topics the gateway will write that can be named now, and the templates that
    cannot be (they hold ``{type}``)."""
    kafka = loaded.settings.kafka
    names = {kafka.dead_letter_topic} if is_fixed(kafka.dead_letter_topic) else set()
    names.update(s.name for s in kafka.topics if s.name)
    dynamic = set()
    for connector in loaded.connectors.values():
        template = connector.config.topic or kafka.topic
        # A push source's events name their own source: known from its ACL, when it
        # names them
        sources = ([connector.source_slug] if not isinstance(connector, PushSource)
                   else loaded.acls[connector.connector_id].named_sources)
        if "{type}" in template or ("{source}" in template and not sources):
            dynamic.add(template)
            continue
        names.update(expand(template, source=source, type="",
                            connector_id=connector.connector_id) for source in sources or [""])
    return ([Planned(n, kafka.spec_for(n)) for n in sorted(names)], sorted(dynamic))


async def inspect(admin: AIOKafkaAdminClient, topics: list[Planned],
                  dynamic: list[str]) -> Report:
    """Each planned topic against the cluster's metadata and configs."""
    # Every topic, not the planned ones by name: a metadata request naming a topic may
    # make a broker that auto-creates topics create it.
    described = await asyncio.wait_for(admin.describe_topics(), TIMEOUT)
    wanted = {t.name for t in topics}
    found = {d["topic"]: d for d in described
             if d["topic"] in wanted and d.get("error_code", 0) == 0}
    declared = {t.name: dict(t.spec.configs) for t in topics if t.spec and t.spec.configs}
    configs = await _configs(admin, [n for n in declared if n in found])
    states = []
    for topic in topics:
        info = found.get(topic.name)
        if info is None:
            states.append(TopicState(topic.name, "missing"))
            continue
        differences = _differences(topic, info, configs.get(topic.name, {}))
        states.append(TopicState(topic.name, "differs" if differences else "ok", differences))
    return Report(states, dynamic)


def _differences(topic: Planned, info: dict[str, Any], configs: dict[str, str]
                 ) -> list[str]:
    spec = topic.spec
    if spec is None:
        return []
    out = []
    partitions = info.get("partitions") or []
    if spec.partitions is not None and len(partitions) != spec.partitions:
        out.append(f"partitions: {len(partitions)}, declared {spec.partitions}")
    replicas = {len(p.get("replicas") or []) for p in partitions}
    if spec.replication_factor is not None and replicas != {spec.replication_factor}:
        out.append(f"replication factor: {'/'.join(map(str, sorted(replicas)))}, declared"
                   f" {spec.replication_factor}")
    for key, value in sorted(spec.configs.items()):
        if configs.get(key) != value:
            out.append(f"{key}: {configs.get(key)!r}, declared {value!r}")
    return out


async def _configs(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    if not names:
        return {}
    answers = await asyncio.wait_for(admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]), TIMEOUT)
    out: dict[str, dict[str, str]] = {}
    for answer in answers:
        for resource in answer.resources:  # (error_code, error_message, type, name, entries)
            out[resource[3]] = {entry[0]: entry[1] for entry in resource[4]}
    return out


async def create(admin: AIOKafkaAdminClient, topics: list[Planned], report: Report
                 ) -> list[str]:
    """Create the missing topics with their declared settings; their names."""
    wanted = {t.name: t.spec for t in topics if t.name in set(report.missing)}
    if not wanted:
        return []
    partitions, replication = await _broker_defaults(admin)
    new = [NewTopic(name, partitions if s is None or s.partitions is None else s.partitions,
                    replication if s is None or s.replication_factor is None
                    else s.replication_factor,
                    topic_configs=dict(s.configs) if s is not None else {})
           for name, s in wanted.items()]
    answer = await asyncio.wait_for(admin.create_topics(new, timeout_ms=int(TIMEOUT * 1000)),
                                    TIMEOUT)
    failed = [f"{item[0]}: {item[2] or f'error {item[1]}'}" for item in answer.topic_errors
              if item[1] not in (0, TOPIC_ALREADY_EXISTS)]
    if failed:
        raise ProvisioningError("could not create " + "; ".join(failed))
    await _visible(admin, set(wanted))
    return sorted(wanted)


async def _visible(admin: AIOKafkaAdminClient, names: set[str]) -> None:
    """Until every broker's metadata the admin client reads lists ``names`` (the
    controller answers CreateTopics before the brokers learn of them)."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        described = await asyncio.wait_for(admin.describe_topics(), TIMEOUT)
        if names <= {d["topic"] for d in described if d.get("error_code", 0) == 0}:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise ProvisioningError("created, but not yet visible after"
                                    f" {TIMEOUT:.0f} s: {', '.join(sorted(names))}")
        await asyncio.sleep(0.2)


async def _brokers(admin: AIOKafkaAdminClient) -> list[int]:
    """The node ids of the cluster's brokers."""
    cluster = await asyncio.wait_for(admin.describe_cluster(), TIMEOUT)
    return [int(b["node_id"]) for b in cluster.get("brokers") or []]


async def _broker_defaults(admin: AIOKafkaAdminClient) -> tuple[int, int]:
    """``num.partitions`` and ``default.replication.factor`` of a broker (the
    CreateTopics versions aiokafka speaks cannot ask for "the broker's default")."""
    brokers = await _brokers(admin)
    values = await broker_configs(admin, brokers[0] if brokers else 0, "num.partitions",
                                  "default.replication.factor", wait_seconds=TIMEOUT)
    replication = min(int(values.get("default.replication.factor") or 1), len(brokers) or 1)
    return int(values.get("num.partitions") or 1), replication


async def auto_creates(admin: AIOKafkaAdminClient) -> bool | None:
    """Whether the brokers create a topic on first use; None when they would not say."""
    brokers = await _brokers(admin)
    if not brokers:
        return None
    said = await broker_configs(admin, brokers[0], "auto.create.topics.enable",
                                wait_seconds=TIMEOUT)
    value = said.get("auto.create.topics.enable")
    return None if value is None else value == "true"


def lines(report: Report) -> list[str]:
    """The report as ``gateway topics`` prints it."""
    out = []
    for topic in report.topics:
        detail = f": {'; '.join(topic.differences)}" if topic.differences else ""
        out.append(f"{topic.status:<8} {topic.name}{detail}")
    out.extend(f"dynamic  {t} (names depend on event types: not checked)"
               for t in report.dynamic)
    return out


async def refusal_to_start(loaded: LoadedConfig, admin: AIOKafkaAdminClient) -> str | None:
    """``kafka.missing_topics: fail``: why the gateway must not start (a topic it writes
    is missing and the brokers do not create topics), or None. An unreachable cluster is
    no reason: the buffer takes events until it is back."""
    topics, dynamic = planned(loaded)
    report = await inspect(admin, topics, dynamic)
    if not report.missing or await auto_creates(admin):
        return None
    return (f"topics missing on {loaded.settings.kafka.bootstrap_servers}, and the brokers do"
            f" not create topics: {', '.join(report.missing)}. Create them"
            " (`gateway topics create`) or set kafka.missing_topics: warn")
