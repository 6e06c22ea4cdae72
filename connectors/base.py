"""The kinds of connector, each with the few methods it needs.

Every connector has an id, typed options (its ``Config``, a pydantic model) and a
``source``; it declares what is static as class attributes and overrides only hooks.

    Webhook      verify(request) and normalize(request): a provider pushes deliveries
    PushSource   verify(request): daemons send already-normalized events to /api/events
    Poller       poll(http, cursor): the gateway asks a source (``connectors.polling``)

For a webhook delivery the service calls, in order:

    challenge(request)   -> an answer to a handshake that carries its own proof, or None
    verify(request)      -> raises SignatureError unless authentic (raw bytes, constant time)
    handshake(request)   -> an answer to a handshake inside an authentic delivery, or None
    delivery_id(request) -> the provider's stable delivery id, for ids and deduplication
    replay_key(request)  -> a second deduplication key where that id is not signed
    normalize(request)   -> events; raises Unnormalizable for authentic but unusable bodies
"""

from __future__ import annotations

from typing import ClassVar, Generic, Literal, TypeVar

from connectors.options import ConnectorConfig
from connectors.request import EventDraft, HandshakeReply, InboundRequest, body_replay_key
from connectors.verification import Verification

__all__ = ["Connector", "Kind", "PushSource", "Webhook", "body_replay_key"]

C = TypeVar("C", bound=ConnectorConfig)
Kind = Literal["webhook", "push", "poller"]


class Connector(Generic[C]):
    """What every kind shares. Subclasses set ``kind``, ``source`` and ``Config``."""

    kind: ClassVar[Kind]
    source: ClassVar[str]
    Config: ClassVar[type[ConnectorConfig]] = ConnectorConfig
    # The type's definition (connectors.definition): required of every type.
    display_name: ClassVar[str] = ""
    description: ClassVar[str] = ""  # unset: the first paragraph of the class docstring
    docs_url: ClassVar[str] = ""
    scopes: ClassVar[tuple[str, ...]] = ()
    # How a webhook type proves its deliveries (connectors.verification); every built-in
    # webhook type states it
    verification: ClassVar[Verification | None] = None

    def __init__(self, connector_id: str, config: C) -> None:
        self.connector_id = connector_id
        self.config = config
        self.source_slug: str = self.source

    @property
    def topic(self) -> str | None:
        return self.config.topic

    def allows(self, event_type: str) -> bool:
        """The ``events`` allow-list: an entry matches the type or its dotted prefix."""
        allowed = self.config.events
        if allowed is None:
            return True
        return any(event_type == e or event_type.startswith(e + ".") for e in allowed)

    async def start(self) -> None:
        """Open what the connector needs before its first request or poll; called at
        startup after what it depends on (the credential store), before the pollers and
        the listener. ``aclose`` runs in the reverse order at shutdown."""

    async def aclose(self) -> None:
        """Release what the connector opened (HTTP clients); called at shutdown."""


class Webhook(Connector[C]):
    """A provider that pushes deliveries to ``POST /webhooks/{connector_id}``."""

    kind: ClassVar[Kind] = "webhook"
    methods: ClassVar[frozenset[str]] = frozenset({"POST"})  # deliveries' HTTP methods
    # The answer a provider insists on for a delivery it may consider received (accepted,
    # duplicate, filtered, dead-lettered), in place of the gateway's JSON: Dropbox Sign
    # retries anything but 200 "Hello API Event Received". None: the gateway's own answer.
    acknowledgement: ClassVar[HandshakeReply | None] = None

    def __init__(self, connector_id: str, config: C) -> None:
        super().__init__(connector_id, config)
        self.secrets: list[bytes] = config.secret_values()  # per request: no pydantic access

    def challenge(self, request: InboundRequest) -> HandshakeReply | None:
        """A handshake that carries its own proof, answered before any signature check
        (Meta's verify token, Dropbox's and Okta's GET, Graph's validationToken). The
        only hook that sees methods other than ``methods``."""
        return None

    async def verify(self, request: InboundRequest) -> None:
        """Raise ``SignatureError`` unless the delivery is authentic. Async so that a
        connector can fetch a signing key first; most never wait."""
        raise NotImplementedError

    async def handshake(self, request: InboundRequest) -> HandshakeReply | None:
        """A provider handshake inside an authentic (already verified) delivery (Slack's
        url_verification, an SNS subscription to confirm), or None."""
        return None

    def delivery_id(self, request: InboundRequest) -> str:
        return "sha256:" + request.sha256()

    def replay_key(self, request: InboundRequest) -> str | None:
        """A second deduplication key, for deliveries whose id the signature does not
        cover: without it a captured delivery sent again with a fresh id would be a new
        event. None when the delivery id is covered (the default id, the body's hash,
        is). See ``body_replay_key``."""
        return None

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        raise NotImplementedError

    def sign(self, body: bytes) -> dict[str, str]:
        """Headers an honest sender would put on ``body`` (for ``gateway sign``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot sign test deliveries")

    def sample_body(self) -> bytes:
        return b'{"type": "gateway.test", "message": "hello from gateway sign"}'


class PushSource(Connector[C]):
    """A daemon that sends already-normalized events to ``POST /api/events``; its
    credentials say which connector is calling."""

    kind: ClassVar[Kind] = "push"
    sources: frozenset[str] | None = None  # the ``source`` values it may write; None: any

    def presents_credentials(self, request: InboundRequest) -> bool:
        raise NotImplementedError

    async def verify(self, request: InboundRequest) -> None:
        raise NotImplementedError

    def sign(self, body: bytes) -> dict[str, str]:
        raise NotImplementedError(f"{type(self).__name__} cannot sign test deliveries")

    def sample_body(self) -> bytes:
        raise NotImplementedError
