"""Governance per connector (``connectors.<id>.governance``): personal data handled before
anything is made durable, and payload contracts.

A connector's ``pii`` paths (``$.customer.email``, ``$.items[*].card.number``) are
handled in every event's payload before its record is built, so the raw values never
reach the buffer, Kafka, the dead-letter topic or logs (the signature was verified over
the raw bytes before). Handling, per path or for all (``pii_handling``):

- ``mask``: a fixed marker, ``****`` (with ``keep_last: 4``, the last four characters
  after it);
- ``hash``: ``hmac-sha256:<hex>``, keyed with ``governance.hash_key`` (one key for the
  gateway: the same value hashes the same way in every event and connector, so consumers
  join on it);
- ``encrypt``: ``enc:<key id>:<base64url(nonce | AES-GCM ciphertext)>`` of the value's
  JSON, with the key ``governance.encryption_key`` names (``gateway decrypt`` reverses
  it for whoever holds the key);
- ``exclude``: the field is removed.

A dead letter carries the body with the same paths handled; a body that is not JSON
cannot be searched for them, so its dead letter carries no body at all.

A connector may declare a JSON Schema per event type (``schemas``: the type, or a dotted
prefix of it, to a file path or an inline schema). An authentic event that violates it
is dead-lettered with reason ``schema_violation`` and the JSON paths and keywords of the
violations (never the values). ``restricted`` connectors need schemas unless
``allow_without_schema``.

The JSON paths are a small subset, parsed here (a library such as jsonpath-ng would cost
more per event than the whole handling): ``$`` then ``.name``, ``['name']``, ``[n]`` and
``[*]``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connectors.errors import Unnormalizable

Handling = Literal["mask", "hash", "encrypt", "exclude"]
Classification = Literal["public", "internal", "confidential", "restricted"]
MASK = "****"
_SEGMENT = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\['((?:[^'\\]|\\.)*)'\]|\[(\d+|\*)\]")
Step = str | int | None  # a key, an index, or None: every element


def parse_path(path: str) -> tuple[Step, ...]:
    """``$.a.b[*].c`` as steps; ValueError when it is not in the supported subset."""
    if not path.startswith("$"):
        raise ValueError(f"{path!r}: a JSON path starts with $")
    steps: list[Step] = []
    pos = 1
    while pos < len(path):
        found = _SEGMENT.match(path, pos)
        if found is None:
            raise ValueError(f"{path!r}: cannot read it from position {pos} (supported:"
                             " .name, ['name'], [n], [*])")
        name, quoted, index = found.groups()
        if name is not None:
            steps.append(name)
        elif quoted is not None:
            steps.append(re.sub(r"\\(.)", r"\1", quoted))
        else:
            steps.append(None if index == "*" else int(index))
        pos = found.end()
    if not steps:
        raise ValueError(f"{path!r}: the whole payload cannot be personal data; name a field")
    return tuple(steps)


def _parents(node: Any, steps: tuple[Step, ...]) -> Iterator[tuple[Any, str | int]]:
    """Each (container, key) the path's last step names in ``node``, where it exists."""
    *head, last = steps
    nodes = [node]
    for step in head:
        nodes = [child for n in nodes for child in _children(n, step)]
    for n in nodes:
        if last is None:
            if isinstance(n, list):
                yield from ((n, i) for i in range(len(n)))
        elif isinstance(last, int):
            if isinstance(n, list) and -len(n) <= last < len(n):
                yield n, last
        elif isinstance(n, dict) and last in n:
            yield n, last


def _children(node: Any, step: Step) -> list[Any]:
    if step is None:
        return list(node) if isinstance(node, list) else []
    if isinstance(step, int):
        return [node[step]] if isinstance(node, list) and -len(node) <= step < len(node) else []
    return [node[step]] if isinstance(node, dict) and step in node else []


class PiiField(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    handling: Handling | None = None  # unset: the connector's pii_handling
    keep_last: int = Field(default=0, ge=0, le=4)  # mask: characters kept after ****

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        parse_path(value)
        return value


class Slo(BaseModel):
    """``governance.slo``: objectives ``gateway.certification`` measures and enforces."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    freshness_minutes: float | None = Field(default=None, gt=0)
    availability_percent: float | None = Field(default=None, ge=0, le=100)
    error_rate_percent: float | None = Field(default=None, ge=0, le=100)


class CertificationConfig(BaseModel):
    """Top-level ``certification``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_seconds: float = Field(default=86_400.0, gt=0)  # clean this long: certified
    measure_seconds: float = Field(default=3_600.0, gt=0)  # SLOs are measured over this
    evaluate_seconds: float = Field(default=60.0, gt=0)  # how often they are evaluated


class Governance(BaseModel):
    """``connectors.<id>.governance``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: str | None = None
    classification: Classification | None = None
    # how long the audit trail (and the delivery store, when there is one) keeps its lines
    retention_days: int | None = Field(default=None, ge=1, le=36500)
    pii: list[PiiField] = Field(default_factory=list)
    pii_handling: Handling = "mask"
    schemas: dict[str, str | dict[str, Any]] = Field(default_factory=dict)
    allow_without_schema: bool = False
    slo: Slo | None = None

    @field_validator("pii", mode="before")
    @classmethod
    def _short_form(cls, value: object) -> object:
        """A path alone (a string) is a field with the connector's handling."""
        if isinstance(value, list):
            return [{"path": v} if isinstance(v, str) else v for v in value]
        return value


class GovernanceKeys(BaseModel):
    """Top-level ``governance``: the keys personal data is hashed and encrypted with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hash_key: SecretStr | None = None  # at least 32 characters
    # key id -> 32 bytes, base64; encryption_key names the one new values are sealed with
    encryption_keys: dict[str, SecretStr] = Field(default_factory=dict)
    encryption_key: str | None = None

    @field_validator("hash_key")
    @classmethod
    def _long(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _aes(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for key_id, key in value.items():
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", key_id):
                raise ValueError(f"key id {key_id!r}: letters, digits, _ and - only")
            try:
                raw = base64.b64decode(key.get_secret_value(), validate=True)
            except ValueError:
                raw = b""
            if len(raw) != 32:
                raise ValueError(f"key {key_id!r}: 32 bytes, base64-encoded (AES-256)")
        return value

    @model_validator(mode="after")
    def _named(self) -> GovernanceKeys:
        if self.encryption_key is not None and self.encryption_key not in self.encryption_keys:
            raise ValueError(f"encryption_key {self.encryption_key!r} is not in"
                             " encryption_keys")
        return self

    def aead(self, key_id: str) -> AESGCM:
        return AESGCM(base64.b64decode(self.encryption_keys[key_id].get_secret_value()))


class SchemaViolation(Unnormalizable):
    """An event that breaks its connector's payload contract: a dead letter."""

    def __init__(self, violations: list[dict[str, str]]) -> None:
        super().__init__("schema_violation")
        self.violations = violations


@dataclass(frozen=True)
class _Field:
    path: str
    steps: tuple[Step, ...]
    handling: Handling
    keep_last: int


class Policy:
    """One connector's governance, compiled: ``handle`` and ``check`` per event."""

    def __init__(self, governance: Governance, keys: GovernanceKeys, base: Path) -> None:
        self.governance = governance
        self.fields = [_Field(f.path, parse_path(f.path), f.handling or governance.pii_handling,
                              f.keep_last) for f in governance.pii]
        self.manifest = [{"path": f.path, "handling": f.handling} for f in self.fields]
        self._hash_key = (keys.hash_key.get_secret_value().encode()
                          if keys.hash_key is not None else None)
        self._key_id = keys.encryption_key
        self._aead = keys.aead(keys.encryption_key) if keys.encryption_key else None
        self._validators = {t: _validator(s, base) for t, s in governance.schemas.items()}

    def problems(self, keys: GovernanceKeys) -> list[str]:
        """What the configuration lacks for this policy (keys, schemas)."""
        out = []
        if any(f.handling == "hash" for f in self.fields) and keys.hash_key is None:
            out.append("pii_handling hash needs governance.hash_key")
        if any(f.handling == "encrypt" for f in self.fields) and keys.encryption_key is None:
            out.append("pii_handling encrypt needs governance.encryption_key")
        g = self.governance
        if g.classification == "restricted" and not g.schemas and not g.allow_without_schema:
            out.append("a restricted connector needs schemas (or allow_without_schema: true)")
        return out

    def handle(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``payload`` with every personal-data field handled."""
        if not self.fields:
            return payload
        copy: dict[str, Any] = orjson.loads(orjson.dumps(payload))
        for f in self.fields:
            found = list(_parents(copy, f.steps))
            for container, key in reversed(found):  # reversed: removals keep indexes
                if f.handling == "exclude":
                    del container[key]
                else:
                    container[key] = self._seal(f, container[key])
        return copy

    def _seal(self, f: _Field, value: Any) -> str:
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        if f.handling == "mask":
            return MASK + (text[-f.keep_last:] if f.keep_last and len(text) > f.keep_last
                           else "")
        if f.handling == "hash":
            assert self._hash_key is not None
            return "hmac-sha256:" + hmac.new(self._hash_key, text.encode(),
                                             hashlib.sha256).hexdigest()
        assert self._aead is not None
        assert self._key_id is not None
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, orjson.dumps(value), self._key_id.encode())
        return f"enc:{self._key_id}:" + base64.urlsafe_b64encode(nonce + sealed).decode()

    def check(self, event_type: str, payload: dict[str, Any]) -> tuple[str, ...]:
        """The fields the type's schema (or its nearest dotted prefix's) declares at the
        top level (``properties``), once ``payload`` meets it; raises SchemaViolation
        when it does not."""
        if not self._validators:
            return ()
        validator, name = None, event_type
        while validator is None and name:
            validator = self._validators.get(name)
            name = name.rpartition(".")[0]
        if validator is None:
            return ()
        errors = sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path))
        if errors:
            raise SchemaViolation([{"path": _json_path(e.absolute_path),
                                    "keyword": str(e.validator)} for e in errors[:20]])
        properties = validator.schema.get("properties") if isinstance(
            validator.schema, dict) else None
        return tuple(properties) if isinstance(properties, dict) else ()

    def handle_text(self, body: str | None) -> str | None:
        """A dead letter's body with the paths handled; None when it is not a JSON
        object (personal data in it could not be found)."""
        if not self.fields or body is None:
            return body
        try:
            parsed = json.loads(body)
        except ValueError:
            return None
        if not isinstance(parsed, dict):
            return None
        return orjson.dumps(self.handle(parsed)).decode()


def decrypt(keys: GovernanceKeys, token: str) -> Any:
    """The value an ``enc:`` token sealed (ValueError when it is not one of ours)."""
    try:
        scheme, key_id, data = token.split(":", 2)
        raw = base64.urlsafe_b64decode(data)
    except ValueError:
        raise ValueError("not an enc:<key id>:<data> token") from None
    if scheme != "enc" or key_id not in keys.encryption_keys:
        raise ValueError(f"no key {key_id!r} in governance.encryption_keys")
    try:
        return orjson.loads(keys.aead(key_id).decrypt(raw[:12], raw[12:], key_id.encode()))
    except Exception:
        raise ValueError("the token does not decrypt with that key (altered?)") from None


def _json_path(steps: Any) -> str:
    out = "$"
    for step in steps:
        out += f"[{step}]" if isinstance(step, int) else f".{step}"
    return out


def _validator(schema: str | dict[str, Any], base: Path) -> Any:
    from jsonschema.validators import validator_for

    if isinstance(schema, str):
        path = Path(schema) if Path(schema).is_absolute() else base / schema
        loaded = json.loads(path.read_text(encoding="utf-8"))
    else:
        loaded = schema
    cls = validator_for(loaded)
    cls.check_schema(loaded)
    return cls(loaded)
