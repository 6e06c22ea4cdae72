"""The options every connector takes where its scheme needs them: secrets and their
rotation, a replay window, the topic and event allow-list, a rate limit, and the ingress
checks made before any signature work (``connectors.ingress``)."""

from __future__ import annotations

import ipaddress
import math

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)


class RateLimit(BaseModel):
    """Authentic deliveries accepted per second per worker process, with bursts up to
    ``burst`` (a token bucket); past it, 429 with ``Retry-After``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_second: float = Field(gt=0)
    burst: int | None = Field(default=None, ge=1)  # default: one second's worth

    @property
    def capacity(self) -> int:
        return self.burst if self.burst is not None else max(1, math.ceil(self.per_second))


class BasicAuth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1)
    password: SecretStr | None = None
    passwords: list[SecretStr] = Field(default_factory=list)  # rotation

    @model_validator(mode="after")
    def _need_password(self) -> BasicAuth:
        if self.password is None and not self.passwords:
            raise ValueError("basic_auth needs password or passwords")
        return self


class ApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    header: str | None = None
    query: str | None = None
    value: SecretStr | None = None
    values: list[SecretStr] = Field(default_factory=list)  # rotation

    @model_validator(mode="after")
    def _complete(self) -> ApiKey:
        if (self.header is None) == (self.query is None):
            raise ValueError("api_key needs exactly one of header and query")
        if self.value is None and not self.values:
            raise ValueError("api_key needs value or values")
        return self


def parse_networks(entries: list[str]
                   ) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR range") from None
    return out


class ConnectorConfig(BaseModel):
    """Options every connector takes where its scheme needs them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: SecretStr | None = None
    secrets: list[SecretStr] = Field(default_factory=list)
    public_key: str | None = None
    tolerance_seconds: int | None = Field(default=None, ge=0)
    public_url: str | None = None
    topic: str | None = None
    events: list[str] | None = None
    rate_limit: RateLimit | None = None
    # Ingress checks before any signature work (connectors/ingress.py).
    allowed_ips: list[str] | None = None
    basic_auth: BasicAuth | None = None
    api_key: ApiKey | None = None
    _secret_bytes: list[bytes] | None = PrivateAttr(default=None)

    @field_validator("allowed_ips")
    @classmethod
    def _networks(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            parse_networks(value)
        return value

    def secret_values(self) -> list[bytes]:
        """Every configured secret, as bytes (computed once: verify runs per request)."""
        if self._secret_bytes is None:
            values = [self.secret] if self.secret is not None else []
            values.extend(self.secrets)
            self._secret_bytes = [s.get_secret_value().encode() for s in values]
        return self._secret_bytes


class SecretRequired(ConnectorConfig):
    """For shared-secret schemes: at least one of ``secret`` / ``secrets``."""

    @model_validator(mode="after")
    def _need_secret(self) -> SecretRequired:
        if self.secret is None and not self.secrets:
            raise ValueError("secret or secrets is required")
        if any(not s.get_secret_value() for s in ([self.secret] if self.secret else [])
               + list(self.secrets)):
            raise ValueError("secrets must not be empty")
        return self

