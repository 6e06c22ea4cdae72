"""The credential store: secrets given as references, anywhere in the configuration.

    ${NAME}               the environment (``${NAME:-default}`` when unset or empty)
    ${file:PATH}          a file's content without its trailing newline: a mounted
                          Kubernetes or Docker secret (PATH relative to the config file)
    ${vault:PATH#FIELD}   a field of a HashiCorp Vault or OpenBao KV v2 secret, read over
                          HTTP from ``credentials.vault`` (token or AppRole auth)

References are resolved when the configuration is read, and again when it changes: the
gateway watches the files it read and re-reads Vault every ``refresh_seconds``
(``gateway.reloading``), then swaps the connectors whose resolved options changed. A
value never appears in a problem, a log line, a config dump or ``repr`` (connectors
hold them as ``SecretStr``); the Vault token goes to ``credentials.vault.address`` only
(no redirects are followed).

``Resolver.write_back`` stores a rotated value (an OAuth2 refresh token a token endpoint
replaced) where its reference points, when the backend allows it: a new version of the
Vault secret (check-and-set on the version read), or the file rewritten in place when it
is writable (a mounted Kubernetes secret is not: that is logged, once).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

log = structlog.get_logger(__name__)

REFERENCE = re.compile(r"\$\{(?:(file|vault):([^}]+)|([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?)\}")


class VaultConfig(BaseModel):
    """``credentials.vault``: where the KV v2 secrets are, and how to log in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str  # https://vault.example:8200 (http only on a loopback address)
    mount: str = "secret"  # the KV v2 engine's path
    namespace: str | None = None  # Vault Enterprise / OpenBao namespaces
    token: SecretStr | None = None  # token auth ...
    role_id: str | None = None  # ... or AppRole
    secret_id: SecretStr | None = None
    approle_mount: str = "approle"
    ca_file: str | None = None  # a private CA's bundle for the server's certificate
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme == "https" and parts.hostname:
            return value.rstrip("/")
        if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
            return value.rstrip("/")
        raise ValueError("must be an https URL (http only on a loopback address)")

    @model_validator(mode="after")
    def _auth(self) -> VaultConfig:
        if (self.token is None) == (self.role_id is None):
            raise ValueError("set token, or role_id and secret_id (AppRole)")
        if self.role_id is not None and self.secret_id is None:
            raise ValueError("AppRole needs secret_id")
        return self


class CredentialsConfig(BaseModel):
    """Top-level ``credentials``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vault: VaultConfig | None = None
    refresh_seconds: float = Field(default=300.0, ge=1)  # Vault secrets re-read this often
    watch_seconds: float = Field(default=2.0, gt=0)  # referenced files checked this often


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class CredentialError(Exception):
    """A reference that cannot be resolved; the message never holds a secret."""


class Vault:
    """A KV v2 client (synchronous: resolving happens while the config is read, and
    on the reloader's thread)."""

    def __init__(self, config: VaultConfig) -> None:
        self.config = config
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def _headers(self) -> dict[str, str]:
        headers = {"X-Vault-Token": self._login()}
        if self.config.namespace:
            headers["X-Vault-Namespace"] = self.config.namespace
        return headers

    def _login(self) -> str:
        c = self.config
        if c.token is not None:
            return c.token.get_secret_value()
        with self._lock:
            if self._token and time.time() < self._expires:
                return self._token
            assert c.secret_id is not None
            body = self._call("POST", f"/v1/auth/{c.approle_mount}/login", json={
                "role_id": c.role_id, "secret_id": c.secret_id.get_secret_value()},
                authenticated=False)
            auth = body.get("auth") or {}
            token = auth.get("client_token")
            if not isinstance(token, str) or not token:
                raise CredentialError("Vault's AppRole login returned no token")
            lease = float(auth.get("lease_duration") or 3600)
            self._token, self._expires = token, time.time() + max(1.0, lease * 0.8)
            return token

    def _call(self, method: str, path: str, *, json: dict[str, Any] | None = None,
              authenticated: bool = True) -> dict[str, Any]:
        c = self.config
        try:  # a client per call: calls are rare, and nothing is left open between them
            with httpx.Client(base_url=c.address, timeout=c.timeout_seconds,
                              follow_redirects=False, verify=c.ca_file or True) as http:
                response = http.request(method, path, json=json,
                                        headers=self._headers() if authenticated else None)
        except httpx.HTTPError as exc:
            raise CredentialError(f"Vault at {self.config.address} cannot be reached"
                                  f" ({type(exc).__name__})") from None
        if response.status_code in (401, 403) and authenticated and self.config.role_id:
            self._token = None  # the AppRole token expired or was revoked: log in again
        if response.status_code == 404:
            raise CredentialError(f"no Vault secret at {path}")
        if response.status_code >= 300:
            raise CredentialError(f"Vault answered HTTP {response.status_code} for {path}")
        try:
            body = response.json()
        except ValueError:
            raise CredentialError(f"Vault's answer for {path} is not JSON") from None
        return body if isinstance(body, dict) else {}

    def read(self, path: str) -> tuple[dict[str, Any], int]:
        """The secret's fields and its version."""
        body = self._call("GET", f"/v1/{self.config.mount}/data/{path.strip('/')}")
        data = body.get("data") or {}
        fields = data.get("data")
        if not isinstance(fields, dict):
            raise CredentialError(f"the Vault secret {path} has no data")
        return fields, int((data.get("metadata") or {}).get("version") or 0)

    def write(self, path: str, fields: dict[str, Any], cas: int) -> None:
        """A new version of the secret, unless another was written since ``cas``."""
        self._call("POST", f"/v1/{self.config.mount}/data/{path.strip('/')}",
                   json={"options": {"cas": cas}, "data": fields})



MISSING = (0, 0, -1)


def fingerprint(path: Path) -> tuple[int, int, int]:
    """What says a file changed: its inode, mtime and size (MISSING when it is gone)."""
    try:
        st = path.stat()
    except OSError:
        return MISSING
    return st.st_ino, st.st_mtime_ns, st.st_size


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class Resolver:
    """Resolves references and remembers what it read: the files (to notice changes),
    the Vault secrets and their versions, and which reference each value came from (a
    digest of the value, never the value), for ``write_back``."""

    def __init__(self, env: dict[str, str], base: Path, vault: Vault | None = None) -> None:
        self.env = env
        self.base = base
        self.vault = vault
        self.files: dict[Path, tuple[int, int, int]] = {}  # path -> (inode, mtime, size)
        self.secrets: dict[str, tuple[dict[str, Any], int]] = {}  # vault path -> read
        self._origin: dict[str, tuple[str, str]] = {}  # digest -> (kind, reference)
        self._unwritable: set[str] = set()

    def expand(self, node: Any, loc: tuple[int | str, ...],
               problem: Callable[[tuple[int | str, ...], str], None]) -> Any:
        """``node`` (a YAML tree) with every reference in its strings resolved."""
        if isinstance(node, str):
            return REFERENCE.sub(lambda m: self._one(m, loc, problem), node)
        if isinstance(node, dict):
            return {k: self.expand(v, (*loc, str(k)), problem) for k, v in node.items()}
        if isinstance(node, list):
            return [self.expand(v, (*loc, i), problem) for i, v in enumerate(node)]
        return node

    def _one(self, m: re.Match[str], loc: tuple[int | str, ...],
             problem: Callable[[tuple[int | str, ...], str], None]) -> str:
        kind, ref, name, default = m.group(1), m.group(2), m.group(3), m.group(4)
        if kind is None:
            value = self.env.get(name)
            if value is not None and (value != "" or default is None):
                return value
            if default is not None:
                return default
            problem(loc, f"environment variable {name} is not set")
            return ""
        try:
            value = self._file(ref) if kind == "file" else self._vault(ref)
        except CredentialError as exc:
            problem(loc, str(exc))
            return ""
        self._origin[_digest(value)] = (kind, ref)
        return value

    def _path(self, ref: str) -> Path:
        path = Path(ref.strip())
        return path if path.is_absolute() else self.base / path

    def _file(self, ref: str) -> str:
        path = self._path(ref)
        try:
            st = path.stat()
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CredentialError(f"no file {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CredentialError(f"cannot read {path} ({type(exc).__name__})") from None
        self.files[path] = (st.st_ino, st.st_mtime_ns, st.st_size)
        return text[:-1] if text.endswith("\n") else text

    def _vault(self, ref: str) -> str:
        if self.vault is None:
            raise CredentialError("a vault: reference needs credentials.vault")
        path, _, field = ref.strip().partition("#")
        if not path or not field:
            raise CredentialError("a vault: reference is vault:PATH#FIELD")
        if path not in self.secrets:
            self.secrets[path] = self.vault.read(path)
        value = self.secrets[path][0].get(field)
        if not isinstance(value, str):
            raise CredentialError(f"the Vault secret {path} has no text field {field!r}")
        return value

    def files_changed(self) -> bool:
        """A file read since has another inode, mtime or size (or is gone, or back)."""
        return any(fingerprint(path) != seen for path, seen in self.files.items())

    def vault_changed(self) -> bool:
        """A Vault secret read since has a newer version (errors: logged, not a change)."""
        if self.vault is None:
            return False
        for path, (_, version) in self.secrets.items():
            try:
                if self.vault.read(path)[1] != version:
                    return True
            except CredentialError as exc:
                log.warning("vault_refresh_failed", detail=str(exc))
        return False

    def write_back(self, old: str, new: str) -> bool:
        """Stores ``new`` where ``old`` came from, if that backend allows; True if it did."""
        origin = self._origin.get(_digest(old))
        if origin is None:
            return False
        kind, ref = origin
        try:
            if kind == "vault" and self.vault is not None:
                path, _, field = ref.strip().partition("#")
                fields, version = self.vault.read(path)
                self.vault.write(path, {**fields, field: new}, cas=version)
                self.secrets[path] = ({**fields, field: new}, version + 1)
            elif kind == "file":
                target = self._path(ref)
                if not os.access(target, os.W_OK):
                    raise CredentialError(f"{target} is not writable")
                tmp = target.with_name(target.name + ".rotating")
                tmp.write_text(new + "\n", encoding="utf-8")
                os.replace(tmp, target)
                st = target.stat()
                self.files[target] = (st.st_ino, st.st_mtime_ns, st.st_size)
            else:
                return False
        except (CredentialError, OSError) as exc:
            if ref not in self._unwritable:
                self._unwritable.add(ref)
                log.warning("credential_write_back_failed", kind=kind,
                            detail=str(exc) if isinstance(exc, CredentialError)
                            else type(exc).__name__)
            return False
        self._origin[_digest(new)] = origin
        log.info("credential_written_back", kind=kind)
        return True

    def close(self) -> None:
        """Forgets what it read (the Vault login token with it)."""
        self.secrets.clear()
        if self.vault is not None:
            self.vault._token = None
