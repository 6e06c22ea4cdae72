"""``redis``: the state that several replicas share (``gateway.shared``), apart from the
module that uses it so that the configuration can name it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class RedisConfig(BaseModel):
    """Top-level ``redis``: off without a ``url`` (``REDIS_URL`` in the environment sets
    it too). ``redis://`` or ``rediss://`` (TLS); a password goes in the URL, which is
    therefore held as a secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: SecretStr | None = None
    # Redis unreachable: accept (deduplicate locally only; event ids stay deterministic,
    # so consumers still can) or reject (503 with Retry-After until it is back)
    on_redis_down: Literal["accept", "reject"] = "accept"
    key_prefix: str = Field(default="gateway:", max_length=64)
    # how long a replica's claim on a delivery blocks the others while it makes the
    # event durable; a replica that dies holding one blocks retries this long at most
    claim_seconds: float = Field(default=30.0, ge=1, le=600)
    # a poller's lease: another replica takes a poller over within this after its owner
    # is gone
    lease_seconds: float = Field(default=15.0, ge=2, le=600)
    timeout_seconds: float = Field(default=2.0, gt=0, le=30)

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None and not url.get_secret_value().startswith(
                ("redis://", "rediss://", "unix://")):
            raise ValueError("a redis://, rediss:// or unix:// URL")
        return url
