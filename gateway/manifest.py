"""Polling connectors declared by a manifest (``connectors.<id>.manifest: crm.yaml``).

    version: 1
    source:                       # the API: where, how to authenticate, how fast
      name: crm                   # the events' source
      base_url: https://api.crm.example/v2
      auth: {type: oauth2, token_url: ..., client_id: gw, client_secret: "${vault:...}"}
      rate_limit: {requests_per_second: 5, burst: 10}
    entities:                     # each is polled on its own
      - name: contacts
        endpoint: /contacts
        records: /data            # JSON pointer to the list ("" = the body)
        primary_key: id
        fields:                   # the payload contract; pii is handled before storage
          id: {type: string}
          email: {type: string, nullable: true, pii: hash}
          updated_at: {type: string}
    update_strategy: {type: incremental, cursor_field: updated_at, param: updated_since}
    schedule: {interval_seconds: 300}          # or {cron: "*/5 * * * *"}
    destination: {topic: "crm.{entity}", key_field: id}
    governance: {owner: sales-ops, classification: confidential}

Validated against its published JSON Schema (``schema/manifest.schema.json``, made from
``Manifest``) with every error and its path; then each entity becomes an ``http_poll``
connector ``<id>.<entity>`` with the manifest's governance, its fields' personal data and
a JSON Schema of its fields as the payload contract of its event type. ``gateway manifest
validate`` and ``explain`` read one without starting anything. References (``${...}``)
resolve as everywhere in the configuration (``gateway.credentials``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.polling.auth import Auth
from connectors.polling.pagination import Pagination
from gateway.governance import Governance, Handling, PiiField

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema" / "manifest.schema.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimit(_Strict):
    requests_per_second: float = Field(gt=0)
    burst: int = Field(default=1, ge=1)


class Source(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,63}$", description="the events' source")
    base_url: str = Field(pattern=r"^https?://", description="the API's base URL")
    auth: Auth | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    rate_limit: RateLimit | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)


FieldType = Literal["string", "integer", "number", "boolean", "object", "array"]


class FieldSpec(_Strict):
    type: FieldType
    nullable: bool = False
    pii: bool | Handling = False  # true: the governance's pii_handling


class UpdateStrategy(_Strict):
    type: Literal["full_refresh", "incremental"] = "full_refresh"
    cursor_field: str | None = None  # incremental: the record field that only grows
    param: str | None = None  # incremental: the query parameter it is sent back in

    @model_validator(mode="after")
    def _incremental(self) -> UpdateStrategy:
        if self.type == "incremental" and not (self.cursor_field and self.param):
            raise ValueError("incremental needs cursor_field and param")
        return self


class Entity(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    endpoint: str = Field(description="a path under source.base_url")
    records: str = ""
    primary_key: str = "id"
    event_type: str | None = None  # default: <entity>.synced
    query: dict[str, str] = Field(default_factory=dict)
    pagination: Pagination = Pagination()
    fields: dict[str, FieldSpec] = Field(default_factory=dict)
    update_strategy: UpdateStrategy | None = None  # default: the manifest's


class Schedule(_Strict):
    interval_seconds: float | None = Field(default=None, gt=0)
    cron: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Schedule:
        if (self.interval_seconds is None) == (self.cron is None):
            raise ValueError("set exactly one of interval_seconds and cron")
        return self


class Destination(_Strict):
    topic: str | None = None  # template: {entity} and kafka.topic's placeholders
    key_field: str | None = None  # the record field that keys its Kafka records


class Manifest(_Strict):
    """A polling source, declared."""

    version: Literal[1] = 1
    source: Source
    entities: list[Entity] = Field(min_length=1)
    update_strategy: UpdateStrategy = UpdateStrategy()
    schedule: Schedule
    destination: Destination = Destination()
    governance: Governance | None = None

    @model_validator(mode="after")
    def _unique(self) -> Manifest:
        names = [e.name for e in self.entities]
        if len(set(names)) != len(names):
            raise ValueError("entity names must be unique")
        return self


def json_schema() -> dict[str, Any]:
    """The published schema (``schema/manifest.schema.json``)."""
    schema = Manifest.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://event-gateway.dev/schema/manifest.schema.json",
            "title": "Polling connector manifest", **schema}


def problems(document: Any) -> list[str]:
    """Every way ``document`` breaks the schema, each with its JSON path."""
    validator = Draft202012Validator(json_schema())
    found = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.path)):
        path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
        found.append(f"{path}: {error.message}")
    return found


def read(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise ValueError(f"{path} is not valid YAML") from None


def compile_entries(cid: str, manifest: Manifest) -> dict[str, dict[str, Any]]:
    """``connectors`` entries, one ``http_poll`` per entity: ``<cid>.<entity>``."""
    src = manifest.source
    out = {}
    for entity in manifest.entities:
        strategy = entity.update_strategy or manifest.update_strategy
        event_type = entity.event_type or f"{entity.name}.synced"
        config: dict[str, Any] = {
            "url": src.base_url.rstrip("/") + "/" + entity.endpoint.lstrip("/"),
            "records": entity.records, "id_field": "/" + entity.primary_key,
            "event_type": event_type, "source": src.name, "query": entity.query,
            "headers": src.headers, "timeout_seconds": src.timeout_seconds,
            "pagination": entity.pagination.model_dump(),
            **manifest.schedule.model_dump(exclude_none=True)}
        if src.auth is not None:
            config["auth"] = _plain(src.auth)
        if src.rate_limit is not None:
            config["requests_per_second"] = src.rate_limit.requests_per_second
            config["burst"] = src.rate_limit.burst
        if strategy.type == "incremental":
            cursor = "/" + (strategy.cursor_field or "")
            config["incremental"] = {"field": cursor, "param": strategy.param}
            config["timestamp_field"] = cursor
            config["version_field"] = cursor  # a record updated since is a new event
        dest = manifest.destination
        if dest.topic:
            config["topic"] = dest.topic.replace("{entity}", entity.name)
        if dest.key_field:
            config["key_field"] = "/" + dest.key_field
        entry: dict[str, Any] = {"type": "http_poll", "config": config}
        governance = _governance(manifest.governance, entity, event_type)
        if governance is not None:
            entry["governance"] = governance
        out[f"{cid}.{entity.name}"] = entry
    return out


def _plain(auth: Auth) -> dict[str, Any]:
    """The auth options with their secret values (to be validated again, as secrets)."""
    out = auth.model_dump(exclude_none=True)
    for key in ("token", "value", "password", "client_secret", "refresh_token"):
        secret = getattr(auth, key)
        if secret is not None:
            out[key] = secret.get_secret_value()
    return out


def _governance(base: Governance | None, entity: Entity, event_type: str
                ) -> dict[str, Any] | None:
    pii = [PiiField(path=f"$.{name}", handling=None if spec.pii is True else spec.pii)
           for name, spec in entity.fields.items() if spec.pii]
    if base is None and not pii and not entity.fields:
        return None
    governance = base.model_dump(mode="json", exclude_none=True) if base else {}
    governance["pii"] = [*governance.get("pii", []), *(p.model_dump(exclude_none=True)
                                                       for p in pii)]
    if entity.fields and "{" not in event_type:  # a contract for a fixed event type
        governance.setdefault("schemas", {})[event_type] = contract(entity)
    return governance


def contract(entity: Entity) -> dict[str, Any]:
    """The JSON Schema its fields declare: types, nullability, required when not null."""
    return {"type": "object",
            "properties": {name: {"type": [spec.type, "null"] if spec.nullable else spec.type}
                           for name, spec in entity.fields.items()},
            "required": sorted(n for n, s in entity.fields.items() if not s.nullable)}


def explain(cid: str, manifest: Manifest, kafka_topic: str) -> list[str]:
    """What ``gateway manifest explain`` prints: what is polled, how, where it goes."""
    src = manifest.source
    auth = src.auth.type if src.auth else "none"
    lines = [f"source {src.name}: {src.base_url} (auth: {auth}"
             + (f", {src.rate_limit.requests_per_second}/s, burst {src.rate_limit.burst}"
                if src.rate_limit else "") + ")"]
    when = (f"every {manifest.schedule.interval_seconds:g} s" if manifest.schedule.interval_seconds
            else f"on cron {manifest.schedule.cron!r}")
    for cid_entity, entry in compile_entries(cid, manifest).items():
        c = entry["config"]
        strategy = (f"incremental on {c['incremental']['field'][1:]} (sent back as"
                    f" ?{c['incremental']['param']}=)" if "incremental" in c
                    else "full refresh")
        topic = c.get("topic") or kafka_topic
        key = c.get("key_field", "")[1:] or "the connector id"
        lines.append(f"  {cid_entity}: GET {c['url']} {when}, records at"
                     f" {c['records'] or '(the body)'}, id {c['id_field'][1:]}; {strategy};"
                     f" events {c['event_type']!r} to {topic!r} keyed by {key}")
        gov = entry.get("governance") or {}
        if gov.get("pii"):
            lines.append("    personal data: " + ", ".join(
                f"{p['path']} ({p.get('handling') or gov.get('pii_handling', 'mask')})"
                for p in gov["pii"]))
        if gov.get("schemas"):
            lines.append("    payload contract: " + ", ".join(sorted(gov["schemas"])))
    return lines
