"""The service's errors and the one place that maps any error to an answer.

The tree is rooted in ``connectors.errors`` (connectors raise errors without knowing
the service); the service adds its branches under the same root:

    GatewayError
     ├── ConfigError              fail startup; carries every problem with its key path
     ├── Rejected                 answer the sender with a 4xx and audit it as rejected
     │    ├── SignatureError      401 unauthorized (invalid_signature / missing_signature /
     │    │                       stale_timestamp)
     │    ├── Forbidden           403 forbidden (unauthorized_ip)
     │    ├── MalformedRequest    400 malformed
     │    ├── UnknownConnector    404 unknown_connector
     │    ├── PayloadTooLarge     413 too_large
     │    └── RateLimited         429 rate_limited, with Retry-After
     ├── Unnormalizable           authentic, but cannot become an envelope: dead-letter it
     ├── Unavailable              503 with Retry-After: cannot make the event durable now
     │    ├── BufferFull          503 buffer_full: the local buffer reached its bound
     │    └── Paused              503 paused: an operator paused the connector
     ├── KeyFetchError            (inside key caches; becomes Unavailable or SignatureError)
     ├── PollError                a poll failed; the poller backs off
     └── InvalidConnector         a connector's options cannot be used (reported as ConfigError)

``answer_for(exc)`` is the mapping from a refusal to its HTTP status, ``{"error": code}``,
headers and audit reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.errors import (
    Forbidden,
    GatewayError,
    InvalidConnector,
    KeyFetchError,
    MalformedRequest,
    PollError,
    Rejected,
    SignatureError,
    Unavailable,
    Unnormalizable,
)

__all__ = [
    "BufferFull", "ConfigError", "ConfigProblem", "Forbidden", "GatewayError",
    "InvalidConnector", "KeyFetchError", "MalformedRequest", "PayloadTooLarge", "PollError",
    "RateLimited", "Rejected", "SignatureError", "Unavailable", "UnknownConnector",
    "Unnormalizable", "answer_for",
]


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


class UnknownConnector(Rejected):
    code = "unknown_connector"


class PayloadTooLarge(Rejected):
    code = "too_large"


class RateLimited(Rejected):
    """The connector's ``rate_limit`` is spent; the sender should retry later."""

    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class BufferFull(Unavailable):
    code = "buffer_full"


class Paused(Unavailable):
    """An operator paused the connector (``POST /admin/connectors/{id}/pause``)."""

    code = "paused"


# The HTTP status of each refusal; the most specific class wins.
STATUS: dict[type[GatewayError], int] = {
    Rejected: 400,
    MalformedRequest: 400,
    SignatureError: 401,
    Forbidden: 403,
    UnknownConnector: 404,
    PayloadTooLarge: 413,
    RateLimited: 429,
    Unavailable: 503,
}


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    status: int
    code: str  # the body's {"error": code}
    detail: str
    headers: dict[str, str]
    reason: str  # the audit line's reason


def answer_for(exc: Rejected | Unavailable) -> ErrorAnswer:
    """What the sender gets for ``exc`` (status, ``{"error": code}``, headers) and the
    reason its audit line gives."""
    status = next(STATUS[k] for k in type(exc).__mro__ if k in STATUS)
    retry_after = exc.retry_after if isinstance(exc, Unavailable | RateLimited) else None
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    reason = exc.reason if isinstance(exc, Rejected) else exc.code
    return ErrorAnswer(status, exc.code, exc.detail, headers, reason)
