"""``admin``: where the admin API listens (``gateway.admin``), apart from the module that
serves it so that the configuration can name it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class AdminConfig(BaseModel):
    """Top-level ``admin``: off until it has a token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=1, le=65535)
    token: SecretStr | None = None
