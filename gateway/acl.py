"""What each connector may produce (``connectors.<id>.acl``): sources, event types and
topics, as glob patterns (``*``, ``?``, ``[...]``). A key left out is the narrow
default, never "everything":

    sources      the connector's own source: a webhook's or poller's source (its
                 ``source`` option, else its type's); a push connector's
                 ``config.sources``, else its id
    event_types  any type of those sources ("*"); narrow it with patterns ("invoice.*")
    topics       the topics its own routing gives those sources and types (its ``topic``
                 or ``kafka.topic``'s template); list them to bound a template

An event outside is refused where its record is built (``Records.build``), whichever
way it came in: for push a 403 (audited ``rejected``/``forbidden``), for webhooks and
pollers a dead letter (reason ``forbidden``). A webhook or poller whose own configuration
falls outside (its source, its ``topic``, its ``events``) does not start.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from connectors.base import Connector, PushSource
from gateway.envelope import topic_for
from gateway.errors import Unnormalizable

Pattern = str


class AclConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: list[Pattern] | None = Field(default=None, min_length=1)
    event_types: list[Pattern] | None = Field(default=None, min_length=1)
    topics: list[Pattern] | None = Field(default=None, min_length=1)


class OutsideAcl(Unnormalizable):
    """An event its connector may not produce: a 403 for push, a dead letter otherwise."""

    def __init__(self, detail: str) -> None:
        super().__init__("forbidden")
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


def _matches(value: str, patterns: list[Pattern]) -> bool:
    return any(fnmatchcase(value, p) for p in patterns)


class Acl:
    """One connector's ACL, its defaults filled in."""

    def __init__(self, connector: Connector[Any], config: AclConfig | None = None) -> None:
        config = config or AclConfig()
        self.configured = config
        if config.sources is not None:
            self.sources = list(config.sources)
        elif isinstance(connector, PushSource):
            self.sources = sorted(connector.sources or {connector.connector_id})
        else:
            self.sources = [connector.source_slug]
        self.event_types = list(config.event_types or ["*"])
        self.topics = list(config.topics) if config.topics is not None else None

    @property
    def named_sources(self) -> list[str]:
        """The sources it may produce when each is a name, not a pattern; else []."""
        return [] if any(set(s) & set("*?[") for s in self.sources) else self.sources

    def check(self, source: str, event_type: str, topic: str) -> None:
        """Raise ``OutsideAcl`` unless this connector may produce the event."""
        if not _matches(source, self.sources):
            raise OutsideAcl(f"source {source!r} is outside this connector's ACL")
        if not _matches(event_type, self.event_types):
            raise OutsideAcl(f"event type {event_type!r} is outside this connector's ACL")
        if self.topics is not None and not _matches(topic, self.topics):
            raise OutsideAcl(f"topic {topic!r} is outside this connector's ACL")

    def problems(self, connector: Connector[Any], template: str) -> list[tuple[str, str]]:
        """Where ``connector``'s own configuration falls outside its ACL: (key under
        ``connectors.<id>``, problem) pairs; a config error for webhooks and pollers."""
        out: list[tuple[str, str]] = []
        if isinstance(connector, PushSource):
            allowed: frozenset[str] = connector.sources or frozenset()
            out += [("config.sources", f"{s!r} is outside acl.sources")
                    for s in sorted(allowed) if not _matches(s, self.sources)]
            return out
        source = connector.source_slug
        if not _matches(source, self.sources):
            out.append(("acl.sources", f"the connector's own source {source!r} is not in it"))
        events = getattr(connector.config, "events", None) or []
        out += [("config.events", f"{e!r} is outside acl.event_types")
                for e in events if not _matches(e, self.event_types)]
        if self.topics is not None:
            if connector.topic is not None:
                if not _matches(connector.topic, self.topics):
                    out.append(("config.topic", f"{connector.topic!r} is outside acl.topics"))
            elif "{type}" not in template:
                topic = topic_for(template, source=source, type="",
                                  connector_id=connector.connector_id)
                if not _matches(topic, self.topics):
                    out.append(("acl.topics", f"its events go to {topic!r} (kafka.topic),"
                                              " which is not in it"))
        return out
