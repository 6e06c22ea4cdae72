"""Google Cloud Pub/Sub push subscriptions with authentication (an OIDC token).

    Authorization: Bearer <JWT RS256>   signed by Google; keys from Google's JWKS
    (https://www.googleapis.com/oauth2/v3/certs, fetched by ``connectors.keyfetch``:
    that host only, bounded cache for the answer's max-age, one fetch at a time, failures
    remembered; an unknown ``kid`` refetches once the keys are a minute old).

Checked: ``aud`` (config ``audience``, required), ``iss`` (accounts.google.com with or
without https://), ``exp``/``iat`` (30 s of clock skew, or ``tolerance_seconds``),
``email_verified`` when there is an email, and ``email`` when ``service_account_email``
is set. Before any fetch the unverified claims must already fit: forged tokens cost no
request. The token does not cover the body: the body's hash is claimed for dedup too.

The push envelope ``{message: {data, attributes, messageId, publishTime}, subscription}``
becomes one event: id ``messageId``, type from the attribute ``type_attribute`` names
(else ``default_type``, ``pubsub.message``), time ``publishTime``; ``data`` decoded as
JSON when it is JSON, else kept as its base64 text (``data_encoding`` says which).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from typing import Any, ClassVar

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from pydantic import Field

from connectors.base import Webhook
from connectors.errors import KeyFetchError, SignatureError, Unnormalizable
from connectors.jwt_signed import KID, bearer, decode, unverified
from connectors.keyfetch import KeyCache, fetch_json, max_age
from connectors.options import ConnectorConfig
from connectors.request import EventDraft, InboundRequest, body_replay_key, parse_time
from connectors.verification import Verification

GOOGLE_CERTS = "https://www.googleapis.com/oauth2/v3/certs"
GOOGLE_HOSTS = ("www.googleapis.com",)
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
JWKS_REFRESH_AFTER = 60.0  # an unknown kid refetches the JWKS when it is older than this


class PubSubConfig(ConnectorConfig):
    """``audience`` (the push subscription's OIDC audience) is required; without
    ``service_account_email`` any Google service account could push with that audience."""

    audience: str = Field(min_length=1)
    service_account_email: str | None = None
    type_attribute: str | None = None  # the message attribute holding the event type
    default_type: str = Field(default="pubsub.message", min_length=1)


class PubSubConnector(Webhook[PubSubConfig]):
    source: ClassVar[str] = "google_pubsub"
    verification = Verification(
        scheme=("OIDC JWT RS256 from Google's JWKS (config `audience`, optional "
                "`service_account_email`)"),
        proof="`Authorization: Bearer`",
        covers=("not the body: the token proves the sender (the body's SHA-256 is claimed for "
                "replays)"),
        window="the token's `exp`",
        dedup="`message.messageId`",
        vectors="Google's published example token + google-auth `id_token.verify_token`",
    )
    Config = PubSubConfig
    SKEW = 30  # seconds of clock skew allowed on exp and iat (tolerance_seconds overrides)

    def __init__(self, connector_id: str, config: PubSubConfig) -> None:
        super().__init__(connector_id, config)
        self.skew = self.SKEW if config.tolerance_seconds is None else config.tolerance_seconds
        self.keys: KeyCache[dict[str, rsa.RSAPublicKey]] = KeyCache(
            connector_id, "Google OIDC signing keys", self._fetch_jwks, size=1)

    async def aclose(self) -> None:
        await self.keys.aclose()

    @staticmethod
    async def _fetch_jwks(client: httpx.AsyncClient,
                          url: str) -> tuple[dict[str, rsa.RSAPublicKey], float]:
        data, headers = await fetch_json(client, url, GOOGLE_HOSTS, "Google OIDC signing keys")
        keys: dict[str, rsa.RSAPublicKey] = {}
        for jwk in data.get("keys", []) if isinstance(data, dict) else []:
            if isinstance(jwk, dict) and jwk.get("kty") == "RSA" and isinstance(
                    jwk.get("kid"), str):
                try:
                    key = RSAAlgorithm.from_jwk(jwk)
                except (jwt.PyJWTError, ValueError, TypeError):
                    continue
                if isinstance(key, rsa.RSAPublicKey):
                    keys[jwk["kid"]] = key
        if not keys:
            raise KeyFetchError("Google's JWKS holds no RSA key", retriable=True)
        return keys, max_age(headers, 3600.0, 60.0, 86400.0)

    def _token(self, request: InboundRequest) -> tuple[str, str, dict[str, Any]]:
        token = bearer(request)
        header, claims = unverified(token)
        kid = header.get("kid")
        if header.get("alg") != "RS256" or not isinstance(kid, str) or not KID.fullmatch(kid):
            raise SignatureError("token is not RS256 with a key id")
        return token, kid, claims

    async def verify(self, request: InboundRequest) -> None:
        token, kid, claims = self._token(request)
        self._precheck(claims)  # unverified: only to spare forged tokens a fetch
        keys = await self.keys.get(GOOGLE_CERTS)
        if kid not in keys and (self.keys.age(GOOGLE_CERTS) or 0.0) >= JWKS_REFRESH_AFTER:
            self.keys.forget(GOOGLE_CERTS)  # Google rotated its keys since the last fetch
            keys = await self.keys.get(GOOGLE_CERTS)
        self._check(token, keys.get(kid))


    def _precheck(self, claims: dict[str, Any]) -> None:
        if claims.get("aud") != self.config.audience or claims.get("iss") not in GOOGLE_ISSUERS:
            raise SignatureError("token audience or issuer does not match")
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp + self.skew < time.time():
            raise SignatureError("token is expired or not valid yet", reason="stale_timestamp")

    def _check(self, token: str, key: rsa.RSAPublicKey | None) -> None:
        if key is None:
            raise SignatureError("token is signed with an unknown key")
        claims = decode(token, key, "RS256", audience=self.config.audience,
                        issuer=GOOGLE_ISSUERS, leeway=self.skew,
                        options={"require": ["exp", "iat", "iss", "aud"]})
        email = claims.get("email")
        if email is not None and claims.get("email_verified") is not True:
            raise SignatureError("token email is not verified")
        wanted = self.config.service_account_email
        if wanted is not None and (not isinstance(email, str) or not hmac.compare_digest(
                email.lower().encode(), wanted.lower().encode())):
            raise SignatureError("token is not from the configured service account")

    def replay_key(self, request: InboundRequest) -> str | None:
        return body_replay_key(request)  # the token does not cover the body or its id

    @staticmethod
    def _message(body: Any) -> dict[str, Any] | None:
        message = body.get("message") if isinstance(body, dict) else None
        return message if isinstance(message, dict) else None

    def delivery_id(self, request: InboundRequest) -> str:
        message = self._message(request.json_or_none())
        mid = (message.get("messageId") or message.get("message_id")) if message else None
        return mid if isinstance(mid, str) and mid else super().delivery_id(request)

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        body = request.json_object()
        message = self._message(body)
        if message is None:
            raise Unnormalizable("body is not a Pub/Sub push envelope (no message object)")
        attributes = message.get("attributes")
        attributes = attributes if isinstance(attributes, dict) else {}
        name = self.config.type_attribute
        etype = attributes.get(name) if name else None
        published = message.get("publishTime") or message.get("publish_time")
        payload: dict[str, Any] = {
            "messageId": message.get("messageId") or message.get("message_id"),
            "publishTime": published, "attributes": attributes,
            "subscription": body.get("subscription")}
        payload.update(_data(message.get("data")))
        for extra in ("orderingKey", "deliveryAttempt"):
            value = message.get(extra, body.get(extra))
            if value is not None:
                payload[extra] = value
        return [EventDraft(type=etype if isinstance(etype, str) and etype
                           else self.config.default_type,
                           payload=payload, timestamp=parse_time(published))]

    def sample_body(self) -> bytes:
        return orjson.dumps({"message": {"data": "eyJoZWxsbyI6ICJ3b3JsZCJ9",
                                         "attributes": {"type": "gateway.test"},
                                         "messageId": "2070443601311540",
                                         "publishTime": "2026-01-01T00:00:00.000Z"},
                             "subscription": "projects/p/subscriptions/s"})


def _data(data: Any) -> dict[str, Any]:
    """``data`` decoded as JSON when it is JSON, else kept as the base64 text it was."""
    if not isinstance(data, str):
        return {"data": None, "data_encoding": None}
    try:
        return {"data": orjson.loads(base64.b64decode(data, validate=True)),
                "data_encoding": "json"}
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        return {"data": data, "data_encoding": "base64"}
