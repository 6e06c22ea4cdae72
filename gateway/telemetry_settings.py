"""``telemetry:`` in the configuration: where spans go (``gateway.telemetry``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator


class TelemetryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # An OTLP/HTTP collector's base URL (http://otel-collector:4318); spans are POSTed to
    # <otlp_endpoint>/v1/traces. Unset: no spans (the trace context is carried anyway).
    otlp_endpoint: str | None = None
    service_name: str = "event-gateway"

    @field_validator("otlp_endpoint")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http or https URL (an OTLP/HTTP collector)")
        return value.rstrip("/")
