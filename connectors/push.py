"""``push``: daemons written in any language send already-normalized events to
``POST /api/events``.

A caller authenticates as one push connector, with ``Authorization: Bearer <secret>`` or
a Standard Webhooks signature (``webhook-id``/``-timestamp``/``-signature``) made with the
secret; the events are then that connector's, whatever the body says. ``sources``
optionally limits the ``source`` values a connector may write.

    connectors:
      billing-daemon:
        type: push
        config:
          secret: ${BILLING_PUSH_TOKEN}
          sources: [billing]
"""

from __future__ import annotations

from typing import ClassVar

from connectors.base import PushSource
from connectors.errors import SignatureError
from connectors.options import SecretRequired
from connectors.request import InboundRequest
from connectors.signing import TokenScheme, key_from_secret, standard_webhooks_scheme
from connectors.verification import Verification

STANDARD_WEBHOOKS = standard_webhooks_scheme()
BEARER = TokenScheme("Authorization", style="bearer")


class PushConfig(SecretRequired):
    sources: list[str] | None = None


class PushConnector(PushSource[PushConfig]):
    source: ClassVar[str] = "push"
    verification = Verification(
        scheme="bearer token, or a Standard Webhooks signature",
        proof="`Authorization`, or `webhook-signature`",
        covers="the token: the sender; the signature: id, timestamp and body",
        window="`webhook-timestamp`, 300 s (signature mode)",
        dedup="the event's `id`",
        vectors="the standardwebhooks SDK signs (tests)",
    )
    Config = PushConfig

    def __init__(self, connector_id: str, config: PushConfig) -> None:
        super().__init__(connector_id, config)
        self.secrets = config.secret_values()
        self.sources = None if config.sources is None else frozenset(config.sources)
        self.signing_keys = [key_from_secret(s, "whsec") if s.startswith(b"whsec_") else s
                             for s in self.secrets]

    def presents_credentials(self, request: InboundRequest) -> bool:
        auth = request.header("authorization") or ""
        return auth.startswith("Bearer ") or bool(request.header("webhook-signature"))

    async def verify(self, request: InboundRequest) -> None:
        if (request.header("authorization") or "").startswith("Bearer "):
            BEARER.verify(request, self.secrets)
            return
        if request.header("webhook-signature"):
            STANDARD_WEBHOOKS.verify(request, self.signing_keys,
                                     tolerance_seconds=self.config.tolerance_seconds)
            return
        raise SignatureError("no bearer token or signature", reason="missing_signature")

    def sign(self, body: bytes) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.secrets[0].decode()}

    def sample_body(self) -> bytes:
        return (b'{"source": "sample", "type": "sample.created", "timestamp": '
                b'"2026-01-01T00:00:00Z", "payload": {"hello": "world"}, "id": "sample-1"}')
