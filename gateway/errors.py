"""The gateway's exceptions, grouped by what the caller should do next.

    GatewayError
     ├── ConfigError              fail startup; carries every problem with its key path
     ├── Rejected                 answer the sender with a 4xx and audit it as rejected
     │    ├── UnknownConnector    404 unknown_connector
     │    ├── PayloadTooLarge     413 too_large
     │    ├── SignatureError      401 invalid_signature / missing_signature / stale_timestamp
     │    ├── Forbidden           403 unauthorized_ip / forbidden
     │    ├── MalformedRequest    400 malformed
     │    └── RateLimited         429 rate_limited, with Retry-After
     ├── Unnormalizable           authentic, but cannot become an envelope: dead-letter it
     └── Unavailable              cannot make the event durable now: 503 with Retry-After
          └── BufferFull          the local buffer reached its bound

Messages name the connector, the key path or the variable and never carry a secret,
a signature or request bytes.
"""

from __future__ import annotations

from dataclasses import dataclass


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    retriable: bool = False


@dataclass(frozen=True)
class ConfigProblem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(GatewayError):
    """The configuration cannot be used; lists every problem found, each with its key path."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid configuration ({len(problems)} problem(s)):\n{lines}")


class Rejected(GatewayError):
    """The request is refused; the sender gets ``status`` and ``{"error": code}``."""

    status: int = 400
    code: str = "rejected"

    def __init__(self, detail: str, *, reason: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason or self.code

    @property
    def headers(self) -> dict[str, str]:
        """Response headers that go with the refusal."""
        return {}


class UnknownConnector(Rejected):
    status = 404
    code = "unknown_connector"


class PayloadTooLarge(Rejected):
    status = 413
    code = "too_large"


class SignatureError(Rejected):
    """Signature or token missing, invalid, or outside the replay window.

    ``reason`` is one of invalid_signature, missing_signature, stale_timestamp; the
    detail never says which secret or which byte failed.
    """

    status = 401
    code = "unauthorized"

    def __init__(self, detail: str, *, reason: str = "invalid_signature") -> None:
        super().__init__(detail, reason=reason)


class Forbidden(Rejected):
    """Authenticated (or not yet), but not allowed: an address outside the connector's
    ``allowed_ips``."""

    status = 403
    code = "forbidden"


class MalformedRequest(Rejected):
    status = 400
    code = "malformed"


class RateLimited(Rejected):
    """The connector's ``rate_limit`` is spent; the sender should retry later."""

    status = 429
    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Unnormalizable(GatewayError):
    """An authentic delivery that cannot be normalized; it goes to the dead-letter topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unavailable(GatewayError):
    """The event cannot be made durable right now; the sender should retry."""

    retriable = True
    code = "unavailable"

    def __init__(self, detail: str, *, retry_after: int = 5) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class BufferFull(Unavailable):
    code = "buffer_full"
