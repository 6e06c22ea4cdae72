"""Providers' handshakes, as small strategies a preset names.

A *challenge* carries its own proof and is answered before any signature check (it is
the only hook that sees GET and OPTIONS); a *handshake* arrives inside an authentic
delivery and is answered after it. Each returns the reply, or None when the request is
not this handshake.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import TYPE_CHECKING, ClassVar

import orjson
from pydantic import SecretStr

from connectors.errors import SignatureError, Unnormalizable
from connectors.options import ConnectorConfig, SecretRequired
from connectors.request import HandshakeReply, InboundRequest, json_pointer

if TYPE_CHECKING:
    from connectors.presets.engine import PresetConnector


def plain(text: str) -> HandshakeReply:
    """Echo a challenge as text, never as something a browser would render."""
    return HandshakeReply(200, text.encode(), "text/plain",
                          {"X-Content-Type-Options": "nosniff"})


class Handshake:
    """One provider's handshake. ``Config``: the options it needs, when it needs more
    than a secret (Meta's verify token)."""

    name: ClassVar[str]
    description: ClassVar[str]  # for people: the providers table
    Config: ClassVar[type[ConnectorConfig] | None] = None

    def answer(self, connector: PresetConnector, request: InboundRequest
               ) -> HandshakeReply | None:
        raise NotImplementedError


class MetaConfig(SecretRequired):
    """Meta signs with the app secret; its GET subscription check echoes a verify token."""

    verify_token: SecretStr


class MetaVerifyToken(Handshake):
    """``GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..``: echo the
    challenge when the verify token is the configured one."""

    name = "meta"
    description = ("GET `hub.challenge` echoed when `hub.verify_token` equals `verify_token`"
                   ", before any signature check")
    Config = MetaConfig

    def answer(self, connector: PresetConnector, request: InboundRequest
               ) -> HandshakeReply | None:
        q = request.query
        if request.method != "GET" or q.get("hub.mode") != "subscribe":
            return None
        expected = getattr(connector.config, "verify_token", None)
        given = q.get("hub.verify_token", "").encode()
        if expected is None or not hmac.compare_digest(
                expected.get_secret_value().encode(), given):
            return HandshakeReply(403, b'{"error":"forbidden","detail":"verify token"}')
        return plain(q.get("hub.challenge", ""))


class DropboxChallenge(Handshake):
    """Dropbox's ``GET ?challenge=``: echo it."""

    name = "dropbox"
    description = "GET `?challenge=` echoed, before any signature check"

    def answer(self, connector: PresetConnector, request: InboundRequest
               ) -> HandshakeReply | None:
        value = request.query.get("challenge")
        return None if request.method != "GET" or value is None else plain(value)


class OktaVerification(Handshake):
    """Okta's one-time ``GET`` with ``X-Okta-Verification-Challenge``, authenticated by
    the same header as deliveries."""

    name = "okta"
    description = ("GET `X-Okta-Verification-Challenge` answered, with the same"
                   " Authorization as its events")

    def answer(self, connector: PresetConnector, request: InboundRequest
               ) -> HandshakeReply | None:
        value = request.header("X-Okta-Verification-Challenge")
        if request.method != "GET" or value is None:
            return None
        connector.check(request)
        return HandshakeReply(200, orjson.dumps({"verification": value}))


_WOO_PING = re.compile(rb"webhook_id=[0-9]{1,20}")


class WooCommercePing(Handshake):
    """Sent unsigned when a webhook is saved; WooCommerce wants exactly 200. It proves
    nothing and publishes nothing."""

    name = "woocommerce"
    description = "the unsigned `webhook_id=N` ping on saving answered 200; nothing published"

    def answer(self, connector: PresetConnector, request: InboundRequest
               ) -> HandshakeReply | None:
        if (request.method == "POST" and request.header(connector.preset.scheme.header) is None
                and _WOO_PING.fullmatch(request.body)):
            return HandshakeReply(200, b"", "text/plain")
        return None


class TrelloHead(Handshake):
    """Trello sends ``HEAD`` to a callback URL before it creates the webhook, and creates
    it only on a 200. It proves nothing and publishes nothing."""

    name = "trello"
    description = ("the `HEAD` Trello sends before creating a webhook answered 200; nothing"
                   " published")

    def answer(self, connector: PresetConnector, request: InboundRequest
               ) -> HandshakeReply | None:
        return HandshakeReply(200, b"", "text/plain") if request.method == "HEAD" else None


class FrontChallenge(Handshake):
    """Saving an application webhook sends a signed ``sync`` with ``X-Front-Challenge``:
    the URL is accepted once the answer echoes it."""

    name = "front"
    description = "`X-Front-Challenge` (the signed `sync` on saving) echoed as JSON"

    def answer(self, connector: PresetConnector, request: InboundRequest
               ) -> HandshakeReply | None:
        value = request.header("X-Front-Challenge")
        return None if value is None else HandshakeReply(200, orjson.dumps({"challenge": value}))


class SlackUrlVerification(Handshake):
    name = "slack"
    description = "`url_verification` challenge echoed after its signature checks"

    def answer(self, connector: PresetConnector, request: InboundRequest
               ) -> HandshakeReply | None:
        body = request.json_or_none()
        if not isinstance(body, dict) or body.get("type") != "url_verification":
            return None
        return HandshakeReply(200, str(body.get("challenge", "")).encode(), "text/plain")


class ZoomUrlValidation(Handshake):
    """``endpoint.url_validation``: the plain token and its HMAC under the secret."""

    name = "zoom"
    description = ("`endpoint.url_validation` answered with the plain token and its HMAC,"
                   " after its signature checks")

    def answer(self, connector: PresetConnector, request: InboundRequest
               ) -> HandshakeReply | None:
        body = request.json_or_none()
        if not isinstance(body, dict) or body.get("event") != "endpoint.url_validation":
            return None
        token = str(json_pointer(body, "/payload/plainToken") or "")
        encrypted = hmac.new(_verifying_key(connector, request), token.encode(),
                             hashlib.sha256).hexdigest()
        return HandshakeReply(200, orjson.dumps({"plainToken": token,
                                                 "encryptedToken": encrypted}))


def _verifying_key(connector: PresetConnector, request: InboundRequest) -> bytes:
    """The secret this (verified) request was signed with: while a secret is rotated,
    the answer must be made with the one the provider uses now."""
    for key in connector.keys[1:]:
        try:
            connector.preset.scheme.verify(request, [key],
                                           tolerance_seconds=connector.config.tolerance_seconds,
                                           url=connector.config.public_url)
        except SignatureError:
            continue
        return key
    return connector.keys[0]


class TwitchCallbackVerification(Handshake):
    name = "twitch"
    description = "`webhook_callback_verification` challenge echoed after its signature checks"

    def answer(self, connector: PresetConnector, request: InboundRequest
               ) -> HandshakeReply | None:
        if request.header("Twitch-Eventsub-Message-Type") != "webhook_callback_verification":
            return None
        try:
            payload = connector.payload(request)
        except Unnormalizable:  # an authentic but unusable body: normalize dead-letters it
            return None
        challenge = json_pointer(payload, "/challenge")
        return HandshakeReply(200, str(challenge or "").encode(), "text/plain")


META = MetaVerifyToken()
DROPBOX = DropboxChallenge()
OKTA = OktaVerification()
WOOCOMMERCE = WooCommercePing()
SLACK = SlackUrlVerification()
ZOOM = ZoomUrlValidation()
TWITCH = TwitchCallbackVerification()
TRELLO = TrelloHead()
FRONT = FrontChallenge()
