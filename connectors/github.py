"""GitHub webhooks: ``X-Hub-Signature-256`` over the raw body.

Type is ``X-GitHub-Event`` plus the body's ``action`` when present
(``pull_request.opened``, ``push``); ``X-GitHub-Delivery`` is the stable delivery id;
``ping`` is a handshake (answered 200 after its signature checks out).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

import orjson

from connectors.base import Webhook
from connectors.errors import Unnormalizable
from connectors.options import SecretRequired
from connectors.request import (
    EventDraft,
    HandshakeReply,
    InboundRequest,
    body_replay_key,
    parse_time,
)
from connectors.signing import HmacScheme
from connectors.verification import Verification

SCHEME = HmacScheme(header="X-Hub-Signature-256", prefix="sha256=", digest="sha256",
                    encoding="hex", delivery_id_header="X-GitHub-Delivery")


def _event_time(event: str, payload: dict[str, Any]) -> datetime | None:
    """The event's own time where GitHub sends one."""
    if event == "push":
        head = payload.get("head_commit")
        if isinstance(head, dict):
            return parse_time(head.get("timestamp"))
        return None
    subject = payload.get(event)
    if isinstance(subject, dict):
        return parse_time(subject.get("updated_at") or subject.get("created_at"))
    return None


class GitHubConnector(Webhook[SecretRequired]):
    source: ClassVar[str] = "github"
    verification = Verification(
        scheme="HMAC-SHA256 hex",
        proof="`X-Hub-Signature-256` 'sha256='",
        covers="`{body}`",
        window="none signed",
        dedup="`X-GitHub-Delivery` (unsigned: the body's SHA-256 is claimed too)",
        handshake="`ping` answered 200",
        vectors="GitHub's published example vector",
    )
    Config = SecretRequired
    scheme: ClassVar[HmacScheme] = SCHEME

    async def verify(self, request: InboundRequest) -> None:
        self.scheme.verify(request, self.secrets)

    async def handshake(self, request: InboundRequest) -> HandshakeReply | None:
        if request.header("X-GitHub-Event") == "ping":
            return HandshakeReply(200, orjson.dumps({"ok": True, "event": "ping"}))
        return None

    def delivery_id(self, request: InboundRequest) -> str:
        return request.header("X-GitHub-Delivery") or super().delivery_id(request)

    def replay_key(self, request: InboundRequest) -> str | None:
        # X-GitHub-Delivery and X-GitHub-Event are not signed: only the body is.
        return body_replay_key(request)

    def sign(self, body: bytes) -> dict[str, str]:
        headers = self.scheme.sign(self.secrets[0], body,
                                   delivery_id=str(uuid.uuid4()))
        return {"X-GitHub-Event": "push", **headers}

    def sample_body(self) -> bytes:
        return orjson.dumps({"ref": "refs/heads/main", "repository": {"full_name": "o/r"},
                             "head_commit": {"id": "0" * 40,
                                             "timestamp": "2026-01-01T00:00:00Z"}})

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        event = request.header("X-GitHub-Event")
        if not event:
            raise Unnormalizable("X-GitHub-Event header is missing")
        payload = request.json_object()
        action = payload.get("action")
        etype = f"{event}.{action}" if isinstance(action, str) and action else event
        return [EventDraft(type=etype, payload=payload, timestamp=_event_time(event, payload),
                           raw=request.body)]
