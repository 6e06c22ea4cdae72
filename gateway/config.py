"""Configuration: YAML with references (``${VAR}``, ``${file:PATH}``, ``${vault:PATH#FIELD}``:
``gateway.credentials``), validated by pydantic.

Every problem in a file is collected and reported at once with its key path
(``connectors.github-main.config.secret``); the process never starts half-configured.
Messages are built from key paths and pydantic's messages only, never from the values,
so a secret cannot leak through an error.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from connectors.options import parse_networks
from gateway.acl import Acl, AclConfig
from gateway.admin_settings import AdminConfig
from gateway.credentials import CredentialsConfig, Resolver, Vault
from gateway.deliveries import RetentionConfig
from gateway.errors import ConfigError, ConfigProblem, InvalidConnector
from gateway.governance import CertificationConfig, Governance, GovernanceKeys, Policy
from gateway.kafka_settings import KafkaConfig, from_environment
from gateway.shared_settings import RedisConfig
from gateway.telemetry_settings import TelemetryConfig
from gateway.topics import is_fixed, template_problem

if TYPE_CHECKING:
    from connectors.base import Connector
    from gateway.deliveries import DeliveryStore

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    """Where to listen, and the limits of the HTTP edge (``gateway.server``)."""

    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    workers: int = Field(default=1, ge=1)
    # The request line and headers together, in bytes, and how many headers: past
    # either, 431 and the connection is closed.
    max_header_bytes: int = Field(default=32_768, ge=1024)
    max_headers: int = Field(default=100, ge=8)
    # From a connection's first byte (or the end of the previous answer) to the end of
    # the headers; then from the headers to the end of the body. Past either, the
    # connection is closed.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    # Per worker process: connections past max_connections, and requests past
    # max_concurrent_requests, are answered 503 with Retry-After.
    max_connections: int = Field(default=1024, ge=1)
    max_concurrent_requests: int = Field(default=256, ge=1)
    # On SIGTERM: requests in flight get this long to finish.
    shutdown_timeout_seconds: float = Field(default=10.0, ge=0)
    # Peers whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or CIDR
    # ranges). Empty: the peer address is the client's.
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)  # raises, naming the entry that is not an address or range
        return value


class AuditConfig(_Strict):
    path: str | None = None
    # Size-based rotation: past max_bytes the file becomes PATH.1 (PATH.1 becomes PATH.2,
    # ...) and only ``keep`` rotated files are kept.
    max_bytes: int = Field(default=100 * 1024 * 1024, ge=4096)
    keep: int = Field(default=5, ge=1, le=1000)
    # Lines waiting while the file cannot be written (full disk); past it, the oldest are
    # dropped and counted in gateway_audit_dropped_lines_total.
    max_backlog_lines: int = Field(default=100_000, ge=100)


class BufferConfig(_Strict):
    """The local durable buffer (SQLite, WAL) between a 2xx and Kafka's acknowledgement."""

    max_events: int = Field(default=1_000_000, gt=0)
    max_bytes: int = Field(default=1 << 30, gt=0)
    dedup_window_seconds: int = Field(default=86_400, ge=0)
    retry_after_seconds: int = Field(default=5, gt=0)
    # /readyz answers not ready while the oldest buffered event is older than this:
    # events are not reaching Kafka.
    max_age_seconds: float = Field(default=300.0, gt=0)


class ConnectorEntry(_Strict):
    enabled: bool = True
    type: str
    config: dict[str, Any] = Field(default_factory=dict)
    governance: Governance | None = None  # gateway.governance
    acl: AclConfig | None = None  # gateway.acl: what it may produce


class GatewayConfig(_Strict):
    server: ServerConfig = ServerConfig()
    kafka: KafkaConfig = KafkaConfig()
    audit: AuditConfig = AuditConfig()
    buffer: BufferConfig = BufferConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    governance: GovernanceKeys = GovernanceKeys()
    certification: CertificationConfig = CertificationConfig()
    credentials: CredentialsConfig = CredentialsConfig()  # gateway.credentials
    retention: RetentionConfig = RetentionConfig()  # gateway.deliveries
    admin: AdminConfig = AdminConfig()  # gateway.admin
    redis: RedisConfig = RedisConfig()  # gateway.shared: state shared by replicas
    data_dir: str = "var"
    connectors: dict[str, ConnectorEntry] = Field(default_factory=dict)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def audit_path(self) -> Path:
        return Path(self.audit.path) if self.audit.path else self.data_path / "audit.jsonl"


class LoadedConfig:
    """A validated configuration plus its connectors, built and ready."""

    def __init__(self, settings: GatewayConfig, connectors: dict[str, Connector[Any]],
                 policies: dict[str, Policy] | None = None,
                 acls: dict[str, Acl] | None = None, *, path: Path | None = None,
                 credentials: Resolver | None = None) -> None:
        self.settings = settings
        self.path = path  # the file it was read from (read again when a secret changes)
        self.credentials = credentials  # what the references resolved from
        self.connectors = connectors  # every enabled connector, by id
        self.policies = policies or {}  # connector id -> its governance, compiled
        # connector id -> what it may produce; every connector has one (gateway.acl)
        self.acls = acls or {cid: Acl(c) for cid, c in connectors.items()}

    async def write_back(self, old: str, new: str) -> bool:
        """A credential the source rotated, stored where its reference points (when the
        backend allows; ``gateway.credentials``)."""
        resolver = self.credentials
        if resolver is None:
            return False
        return await asyncio.to_thread(resolver.write_back, old, new)

    def delivery_store(self) -> DeliveryStore:
        """The delivery store, its retention per connector from governance."""
        from gateway.deliveries import DeliveryStore

        days = {cid: float(entry.governance.retention_days)
                for cid, entry in self.settings.connectors.items()
                if entry.governance is not None and entry.governance.retention_days}
        return DeliveryStore(self.settings.data_path / "deliveries.db",
                             self.settings.retention, days, self.connectors)

    def audit_retention(self) -> dict[str, float]:
        """connector id -> seconds its audit lines are kept (governance.retention_days)."""
        return {cid: entry.governance.retention_days * 86400.0
                for cid, entry in self.settings.connectors.items()
                if entry.governance is not None and entry.governance.retention_days}

    def fixed_topics(self) -> list[str]:
        """The topics named without placeholders: these must exist (or be auto-created)."""
        kafka = self.settings.kafka
        names = [kafka.topic, kafka.dead_letter_topic]
        names.extend(c.topic for c in self.connectors.values() if c.topic)
        return sorted({n for n in names if is_fixed(n)})


def key_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def problems_from_validation(
    exc: ValidationError, prefix: tuple[int | str, ...] = ()
) -> list[ConfigProblem]:
    problems = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = prefix + tuple(err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        problems.append(ConfigProblem(key_path(loc), msg))
    return problems


_PLACEHOLDER_SECRET = re.compile(
    r"(change[-_ ]?me|replace[-_ ]?me|placeholder|your[-_ ]?(secret|token|key)|example|"
    r"^(secret|password|passwd|token|test|default|dummy|xxx+|\*+)$)", re.IGNORECASE)


PLACEHOLDER_PROBLEM = ("looks like a placeholder, not a secret: set a real one (or run with"
                       " --dev / GATEWAY_DEV=1 for local development only)")


def is_placeholder(secret: SecretStr) -> bool:
    """A secret anyone could guess: the words example configurations use."""
    return bool(_PLACEHOLDER_SECRET.search(secret.get_secret_value().strip()))


def secret_fields(model: BaseModel, loc: tuple[int | str, ...] = ()
                  ) -> list[tuple[tuple[int | str, ...], SecretStr]]:
    """Every secret value in a validated config model, with its key path."""
    found: list[tuple[tuple[int | str, ...], SecretStr]] = []

    def walk(value: object, where: tuple[int | str, ...]) -> None:
        if isinstance(value, SecretStr):
            found.append((where, value))
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name), (*where, name))
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                walk(item, (*where, i))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*where, str(key)))

    walk(model, loc)
    return found


def resolve_path(explicit: str | None) -> Path:
    path = explicit or os.environ.get("GATEWAY_CONFIG")
    if not path:
        raise ConfigError(
            [ConfigProblem("", "no configuration file: pass --config PATH or set GATEWAY_CONFIG")]
        )
    return Path(path)


def load_config(path: Path, env: dict[str, str] | None = None, *,
                allow_placeholders: bool = False) -> LoadedConfig:
    """Read, expand, validate and build; raises ConfigError listing every problem.

    Secrets that look like placeholders (``change-me``, ...) are problems unless
    ``GATEWAY_DEV=1`` (``gateway run --dev``) or ``allow_placeholders`` (commands that
    only sign or read, never serve)."""

    env = dict(os.environ) if env is None else env
    dev = allow_placeholders or env.get("GATEWAY_DEV", "") in ("1", "true", "yes")
    problems: list[ConfigProblem] = []
    tree, resolver = _expand(_read(path), env, path.parent, problems)
    if (kafka := from_environment(tree.get("kafka"), env)) is not tree.get("kafka"):
        tree["kafka"] = kafka
    if env.get("GATEWAY_DATA_DIR"):
        tree["data_dir"] = env["GATEWAY_DATA_DIR"]
    if env.get("REDIS_URL"):
        redis = tree.get("redis")
        tree["redis"] = {**(redis if isinstance(redis, dict) else {}), "url": env["REDIS_URL"]}

    # Connectors are validated one by one, so that a broken top level does not hide them.
    raw_connectors = tree.pop("connectors", None) or {}
    settings: GatewayConfig | None = None
    try:
        settings = GatewayConfig.model_validate(tree)
    except ValidationError as exc:
        problems.extend(problems_from_validation(exc))
    if settings is not None and not dev:
        for section in ("kafka", "governance"):
            problems.extend(ConfigProblem(key_path((section, *where)), PLACEHOLDER_PROBLEM)
                            for where, secret in secret_fields(getattr(settings, section))
                            if is_placeholder(secret))

    entries, connectors = _connectors(raw_connectors, path.parent, resolver, dev, problems)

    policies = _policies(settings, entries, connectors, path.parent, problems)
    acls = _acls(settings, entries, connectors, problems)
    if problems or settings is None:
        raise ConfigError(problems)
    settings = settings.model_copy(update={"connectors": entries})
    return LoadedConfig(settings, connectors, policies, acls, path=path, credentials=resolver)


def _connectors(raw_connectors: Any, base: Path, resolver: Resolver, dev: bool,
                problems: list[ConfigProblem]
                ) -> tuple[dict[str, ConnectorEntry], dict[str, Connector[Any]]]:
    """Every ``connectors`` entry (a manifest's: one per entity), validated one by one."""
    from connectors import registry

    entries: dict[str, ConnectorEntry] = {}
    connectors: dict[str, Connector[Any]] = {}
    if not isinstance(raw_connectors, dict):
        problems.append(ConfigProblem("connectors", "must be a mapping of connector ids"))
        raw_connectors = {}
    try:
        available = registry.available()
    except InvalidConnector as exc:  # an installed type with a broken definition
        problems.append(ConfigProblem("connectors", str(exc)))
        available, raw_connectors = {}, {}
    flat: dict[str, Any] = {}
    for cid, raw_entry in raw_connectors.items():
        if isinstance(raw_entry, dict) and "manifest" in raw_entry:  # gateway.manifest
            flat.update(_manifest(str(cid), raw_entry, base, resolver, problems))
        else:
            flat[str(cid)] = raw_entry
    for cid, raw_entry in flat.items():
        built = _connector(cid, raw_entry, available, dev, problems)
        if built is not None:
            entries[cid], connector = built
            if connector is not None:
                connectors[cid] = connector
    return entries, connectors


def _manifest(cid: str, raw_entry: dict[str, Any], base: Path, resolver: Resolver,
              problems: list[ConfigProblem]) -> dict[str, Any]:
    """The connectors a manifest declares (``gateway.manifest``), one per entity."""
    from gateway import manifest

    loc = key_path(("connectors", cid, "manifest"))
    unknown = sorted(set(raw_entry) - {"manifest", "enabled"})
    problems.extend(ConfigProblem(key_path(("connectors", cid, k)), "unknown key")
                    for k in unknown)
    if raw_entry.get("enabled") is False:
        return {}
    try:
        document = manifest.read(base / str(raw_entry["manifest"]))
    except ValueError as exc:
        problems.append(ConfigProblem(loc, str(exc)))
        return {}
    found = manifest.problems(document)  # on the text as written: no secret in a message
    if found:
        problems.extend(ConfigProblem(loc, p) for p in found)
        return {}
    expanded = resolver.expand(document, ("connectors", cid, "manifest"),
                               lambda where, m: problems.append(ConfigProblem(loc, m)))
    try:
        declared = manifest.Manifest.model_validate(expanded)
    except ValidationError as exc:
        problems.extend(ConfigProblem(loc, str(p)) for p in problems_from_validation(exc))
        return {}
    return manifest.compile_entries(cid, declared)


def _expand(raw: dict[str, Any], env: dict[str, str], base: Path,
            problems: list[ConfigProblem]) -> tuple[dict[str, Any], Resolver]:
    """The tree with its references resolved (``gateway.credentials``): first the
    ``credentials`` section (environment and files only: it says how to reach Vault),
    then the rest."""
    def problem(loc: tuple[int | str, ...], message: str) -> None:
        problems.append(ConfigProblem(key_path(loc), message))

    boot = Resolver(env, base)
    section = boot.expand(raw.get("credentials") or {}, ("credentials",), problem)
    vault = None
    try:
        vault_config = CredentialsConfig.model_validate(section).vault
        vault = Vault(vault_config) if vault_config is not None else None
    except ValidationError:
        pass  # reported with the whole file's validation
    resolver = Resolver(env, base, vault)
    resolver.files.update(boot.files)
    tree = resolver.expand({k: v for k, v in raw.items() if k != "credentials"}, (), problem)
    if "credentials" in raw:
        tree["credentials"] = section
    return tree, resolver


def _acls(settings: GatewayConfig | None, entries: dict[str, ConnectorEntry],
          connectors: dict[str, Connector[Any]], problems: list[ConfigProblem]
          ) -> dict[str, Acl]:
    """Every enabled connector's ACL (the narrow default where none is configured); a
    connector configured outside its own is a problem."""
    acls = {}
    for cid, connector in connectors.items():
        acls[cid] = acl = Acl(connector, entries[cid].acl)
        if settings is not None:
            problems.extend(ConfigProblem(key_path(("connectors", cid, *where.split("."))), p)
                            for where, p in acl.problems(connector, settings.kafka.topic))
    return acls


def _policies(settings: GatewayConfig | None, entries: dict[str, ConnectorEntry],
              connectors: dict[str, Connector[Any]], base: Path,
              problems: list[ConfigProblem]) -> dict[str, Policy]:
    """The enabled connectors' governance, compiled (schemas read relative to the
    config file's directory)."""
    if settings is None:
        return {}
    keys = settings.governance
    policies = {}
    for cid, entry in entries.items():
        if entry.governance is None or cid not in connectors:
            continue
        loc = key_path(("connectors", cid, "governance"))
        try:
            policy = Policy(entry.governance, keys, base)
        except (OSError, ValueError, SchemaError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) else str(exc).split("\n")[0]
            problems.append(ConfigProblem(f"{loc}.schemas", f"unusable schema: {detail}"))
            continue
        problems.extend(ConfigProblem(loc, p) for p in policy.problems(keys))
        policies[cid] = policy
    return policies


def _read(path: Path) -> dict[str, Any]:
    """The YAML file's top-level mapping; ConfigError when it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem("", f"cannot read {path}: {exc.strerror}")]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([ConfigProblem("", f"{path} is not valid YAML{where}")]) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError([ConfigProblem("", f"{path} must hold a mapping at the top level")])
    return raw


def _connector(cid: str, raw_entry: Any, available: dict[str, type[Connector[Any]]],
               dev: bool, problems: list[ConfigProblem]
               ) -> tuple[ConnectorEntry, Connector[Any] | None] | None:
    """One ``connectors.<id>`` entry, validated by its type's ``Config``: what the
    settings keep of it (secrets masked) and the connector when enabled; None, with
    its problems added, when it cannot be used."""
    loc: tuple[int | str, ...] = ("connectors", cid)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", cid):
        problems.append(ConfigProblem(
            key_path(loc), "connector id must be letters, digits, '.', '_' or '-'"))
        return None
    try:
        entry = ConnectorEntry.model_validate(raw_entry)
    except ValidationError as exc:
        problems.extend(problems_from_validation(exc, loc))
        return None
    cls = available.get(entry.type)
    if cls is None:
        names = ", ".join(sorted(available)) or "none installed"
        problems.append(ConfigProblem(
            key_path((*loc, "type")),
            f"unknown connector type {entry.type!r}; available: {names}"))
        return None
    try:
        options = cls.Config.model_validate(entry.config)
    except ValidationError as exc:
        problems.extend(problems_from_validation(exc, (*loc, "config")))
        return None
    # What the settings keep of a connector's config: secrets as "**********".
    kept = entry.model_copy(
        update={"config": options.model_dump(mode="json", exclude_defaults=True)})
    if options.topic and (problem := template_problem(options.topic)):
        problems.append(ConfigProblem(key_path((*loc, "config", "topic")), problem))
    if not dev:
        problems.extend(
            ConfigProblem(key_path((*loc, "config", *where)), PLACEHOLDER_PROBLEM)
            for where, secret in secret_fields(options) if is_placeholder(secret))
    if not entry.enabled:
        return kept, None
    try:
        return kept, cls(cid, options)
    except InvalidConnector as exc:  # e.g. a secret not in the provider's format
        problems.append(ConfigProblem(key_path((*loc, "config")), str(exc)))
        return None
