"""Every error the project raises on purpose, in one tree rooted here, so that
connectors need nothing from the service that runs them.

    GatewayError                 root; ``retriable``: whether trying again later may succeed
     ├── Rejected                the delivery is refused; ``reason`` goes to the audit line
     │    ├── SignatureError     invalid_signature / missing_signature / stale_timestamp
     │    ├── Forbidden          unauthorized_ip
     │    └── MalformedRequest   malformed
     ├── Unnormalizable          authentic, but cannot become an envelope: dead-letter it
     ├── Unavailable             retriable: cannot be done now (a key server, the buffer)
     ├── KeyFetchError           a signing key could not be fetched (``retriable`` or not)
     ├── PollError               a poll failed; the poller backs off and tries again
     └── InvalidConnector        a connector's definition or options cannot be used

The service (``gateway.errors``) adds its own branches under the same root (configuration,
unknown connector, size and rate limits, a full buffer) and maps every error to an HTTP
answer and an audit reason in one table. Messages name the connector, the option or the
variable and never carry a secret, a signature or request bytes.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error the project raises on purpose."""

    retriable: bool = False


class Rejected(GatewayError):
    """The request is refused; ``reason`` (default ``code``) is the audit reason."""

    code: str = "rejected"

    def __init__(self, detail: str, *, reason: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason or self.code


class SignatureError(Rejected):
    """Signature or token missing, invalid, or outside the replay window.

    ``reason`` is one of invalid_signature, missing_signature, stale_timestamp; the
    detail never says which secret or which byte failed.
    """

    code = "unauthorized"

    def __init__(self, detail: str, *, reason: str = "invalid_signature") -> None:
        super().__init__(detail, reason=reason)


class Forbidden(Rejected):
    """Not allowed whatever it proves: an address outside the connector's ``allowed_ips``."""

    code = "forbidden"


class MalformedRequest(Rejected):
    code = "malformed"


class Unnormalizable(GatewayError):
    """An authentic delivery that cannot be normalized; it goes to the dead-letter topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unavailable(GatewayError):
    """It cannot be done right now; the sender should retry after ``retry_after`` seconds."""

    retriable = True
    code = "unavailable"

    def __init__(self, detail: str, *, retry_after: int = 5) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class KeyFetchError(GatewayError):
    """A provider's signing key or certificate could not be fetched or used. Retriable
    failures answer deliveries 503 (``Unavailable``); others, where the answer itself is
    wrong (not a key, too large), refuse them as unverifiable (``SignatureError``)."""

    def __init__(self, detail: str, *, retriable: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retriable = retriable


class PollError(GatewayError):
    """A poll failed: the source answered an error, an unusable body, or a link to an
    origin that is not allowed. The poller keeps its cursor and tries again later."""

    retriable = True


class InvalidConnector(GatewayError):
    """A connector's definition or options cannot be used (a bad preset, a malformed
    key); raised at startup, where the configuration loader reports it with its key path."""
