"""Providers whose proof is a JWT (PyJWT does the JOSE work; algorithms are pinned).

    netlify        JWS HS256 in X-Webhook-Signature; claims iss=netlify, sha256 = the body's
    vonage         Authorization: Bearer JWT HS256 (signature secret); payload_hash, iat
    plaid          JWT ES256 in Plaid-Verification; key by kid from Plaid's
                   /webhook_verification_key/get; request_body_sha256, iat within 5 min

(``google_pubsub``, an OIDC token, is in connectors/google_pubsub.py and uses the helpers
here.)

Plaid's keys are fetched by ``connectors.keyfetch`` (https hosts fixed here, bounded
cache, one fetch at a time, failures remembered). Before any fetch, the token's unverified
claims must already fit (fresh, matching the body): forged garbage costs no request.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from pydantic import Field

from connectors.base import Webhook
from connectors.errors import KeyFetchError, SignatureError
from connectors.keyfetch import KeyCache, fetch_json
from connectors.options import SecretRequired
from connectors.request import EventDraft, InboundRequest, parse_time
from connectors.signing import OWS, matches_any
from connectors.timestamps import ReplayWindow
from connectors.verification import Verification

KID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


class _Mismatch(SignatureError):
    """The signature itself does not verify (as opposed to a claim that does not fit)."""


@contextmanager
def _quiet() -> Iterator[None]:
    """PyJWT warns on HMAC keys under 32 bytes; providers choose their secrets' length."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        yield


def decode(token: str, key: Any, algorithm: str, **checks: Any) -> dict[str, Any]:
    """``jwt.decode`` pinned to one algorithm, its errors as SignatureError."""
    try:
        with _quiet():
            claims: dict[str, Any] = jwt.decode(token, key, algorithms=[algorithm], **checks)
            return claims
    except jwt.InvalidSignatureError:
        raise _Mismatch("signature does not match") from None
    except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
        raise SignatureError("token is expired or not valid yet",
                             reason="stale_timestamp") from None
    except jwt.MissingRequiredClaimError as exc:
        raise SignatureError(f"token lacks the {exc.claim} claim",
                             reason="missing_signature") from None
    except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
        raise SignatureError("token audience or issuer does not match") from None
    except jwt.PyJWTError:
        raise SignatureError("token is malformed") from None


def decode_hs256(token: str, secrets: list[bytes], **checks: Any) -> dict[str, Any]:
    """Tried with every secret (rotation), with no early exit telling which one matched."""
    claims: dict[str, Any] | None = None
    error: SignatureError = _Mismatch("signature does not match")
    for secret in secrets:
        try:
            found = decode(token, secret, "HS256", **checks)
        except _Mismatch:
            continue
        except SignatureError as exc:  # the signature matched; a claim did not
            error = exc
            continue
        claims = claims or found
    if claims is None:
        raise error
    return claims


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before the signature is checked: for choosing a key only."""
    try:
        return jwt.get_unverified_header(token), jwt.decode(
            token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise SignatureError("token is malformed") from None


def bearer(request: InboundRequest) -> str:
    scheme, _, token = (request.header("authorization") or "").strip(OWS).partition(" ")
    if scheme.lower() != "bearer" or not token.strip(OWS):
        raise SignatureError("bearer token is missing", reason="missing_signature")
    return token.strip(OWS)


def check_iat(claims: dict[str, Any], tolerance: int) -> None:
    iat = claims.get("iat")
    stamp = float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else None
    ReplayWindow(tolerance, tolerance).check(stamp, what="the token's iat")


def check_body_hash(claims: dict[str, Any], claim: str, digests: list[str]) -> None:
    """The claim holding the body's SHA-256 (hex) must equal one of ``digests``."""
    value = claims.get(claim)
    if not isinstance(value, str) or not matches_any(
            (d.encode() for d in digests), [value.lower().encode()]):
        raise SignatureError("the body does not match the token's hash")


def sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


# -- Netlify ------------------------------------------------------------------------------

class NetlifyConnector(Webhook[SecretRequired]):
    """Deploy notifications; one event per hook, the type from the deploy's ``state``."""

    source: ClassVar[str] = "netlify"
    verification = Verification(
        scheme="JWS HS256 (`secret`)",
        proof="`X-Webhook-Signature`",
        covers="the body (`sha256` claim), `iss: netlify`",
        window="none signed",
        dedup="body SHA-256",
        vectors="built from the documented algorithm (no published vector or SDK)",
    )
    Config = SecretRequired
    HEADER = "X-Webhook-Signature"

    async def verify(self, request: InboundRequest) -> None:
        token = (request.header(self.HEADER) or "").strip(OWS)
        if not token:
            raise SignatureError("signature header is missing", reason="missing_signature")
        claims = decode_hs256(token, self.secrets, issuer="netlify",
                              options={"require": ["iss", "sha256"]})
        check_body_hash(claims, "sha256", [sha256_hex(request.body)])

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        deploy = request.json_object()
        state = deploy.get("state")
        etype = f"deploy.{state}" if isinstance(state, str) and state else "netlify.deploy"
        return [EventDraft(type=etype, payload=deploy, raw=request.body,
                           timestamp=parse_time(deploy.get("updated_at")
                                                or deploy.get("created_at")))]

    def sign(self, body: bytes) -> dict[str, str]:
        with _quiet():
            token = jwt.encode({"iss": "netlify", "sha256": sha256_hex(body)},
                               self.secrets[0], algorithm="HS256")
        return {self.HEADER: token}

    def sample_body(self) -> bytes:
        return orjson.dumps({"id": "5ebc34bf4fea0b01f02efa3a", "site_id": "fa4dd95a", "state":
                             "ready", "branch": "main", "context": "production",
                             "updated_at": "2026-01-01T00:00:00.000Z"})


# -- Vonage -------------------------------------------------------------------------------

class VonageConnector(Webhook[SecretRequired]):
    """Messages API (and Voice) signed webhooks."""

    source: ClassVar[str] = "vonage"
    verification = Verification(
        scheme="JWT HS256 (`secret`)",
        proof="`Authorization: Bearer`",
        covers="the body (`payload_hash` claim)",
        window="`iat`, 300 s",
        dedup="`message_uuid:status`",
        vectors="vonage-jwt's published token + `vonage_jwt.verify_signature`",
    )
    Config = SecretRequired
    TOLERANCE = 300  # Vonage documents no window; iat older than this is refused

    @property
    def tolerance(self) -> int:
        window = self.config.tolerance_seconds
        return self.TOLERANCE if window is None else window

    async def verify(self, request: InboundRequest) -> None:
        claims = decode_hs256(bearer(request), self.secrets, leeway=self.tolerance,
                              options={"require": ["iat", "payload_hash"]})
        check_iat(claims, self.tolerance)
        digests = [sha256_hex(request.body)]
        body = request.json_or_none()
        if body is not None:  # Vonage's Voice docs hash the JSON re-serialized compactly
            with suppress(TypeError, orjson.JSONEncodeError):
                digests.append(sha256_hex(orjson.dumps(body)))
        check_body_hash(claims, "payload_hash", digests)

    def delivery_id(self, request: InboundRequest) -> str:
        body = request.json_or_none()
        if isinstance(body, dict):
            uid = body.get("message_uuid") or body.get("uuid")
            status = body.get("status")
            if isinstance(uid, str) and uid:
                return f"{uid}:{status}" if isinstance(status, str) and status else uid
        return super().delivery_id(request)

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        body = request.json_object()
        status = body.get("status")
        if "message_uuid" in body:
            etype = f"message.{status}" if isinstance(status, str) and status else (
                "message.inbound")
        else:
            etype = f"call.{status}" if isinstance(status, str) and status else "vonage.event"
        return [EventDraft(type=etype, payload=body, raw=request.body,
                           timestamp=parse_time(body.get("timestamp")))]

    def sign(self, body: bytes) -> dict[str, str]:
        claims = {"iat": int(time.time()), "jti": str(uuid.uuid4()), "iss": "Vonage",
                  "payload_hash": sha256_hex(body)}
        with _quiet():
            return {"Authorization": "Bearer " + jwt.encode(claims, self.secrets[0], "HS256")}

    def sample_body(self) -> bytes:
        return orjson.dumps({"message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab",
                             "to": "447700900000", "from": "447700900001", "channel": "sms",
                             "message_type": "text", "text": "hello from gateway sign",
                             "timestamp": "2026-01-01T00:00:00Z"})


# -- Plaid --------------------------------------------------------------------------------

PLAID_HOSTS = ("sandbox.plaid.com", "development.plaid.com", "production.plaid.com")
PLAID_KEY_TTL = 3600.0


class PlaidConfig(SecretRequired):
    """``client_id`` and ``secret`` (Plaid API credentials, for fetching keys)."""

    client_id: str = Field(min_length=1)
    environment: Literal["sandbox", "development", "production"]


@dataclass(frozen=True, slots=True)
class PlaidKey:
    key: ec.EllipticCurvePublicKey
    expired: bool  # Plaid set expired_at: tokens signed with it are refused


class PlaidConnector(Webhook[PlaidConfig]):
    source: ClassVar[str] = "plaid"
    verification = Verification(
        scheme=("JWT ES256, key by `kid` from `/webhook_verification_key/get` (config "
                "`client_id`, `secret`, `environment`)"),
        proof="`Plaid-Verification`",
        covers="the body, through the `request_body_sha256` claim",
        window="`iat`, 300 s",
        dedup="body SHA-256 + the signed `iat`",
        vectors=("documented algorithm with a generated EC key; plaid-python's key-fetch models "
                 "(Plaid publishes no token)"),
    )
    Config = PlaidConfig
    HEADER = "Plaid-Verification"
    TOLERANCE = 300  # "verify that the webhook is not more than 5 minutes old"

    def __init__(self, connector_id: str, config: PlaidConfig) -> None:
        super().__init__(connector_id, config)
        self.url = f"https://{config.environment}.plaid.com/webhook_verification_key/get"
        self.keys: KeyCache[PlaidKey] = KeyCache(connector_id, "Plaid verification key",
                                                 self._fetch_key)
        window = config.tolerance_seconds
        self.tolerance = self.TOLERANCE if window is None else window

    async def aclose(self) -> None:
        await self.keys.aclose()

    async def _fetch_key(self, client: httpx.AsyncClient, kid: str) -> tuple[PlaidKey, float]:
        data, _ = await fetch_json(client, self.url, PLAID_HOSTS, "Plaid verification key",
                                   body={"client_id": self.config.client_id,
                                         "secret": self.secrets[0].decode(), "key_id": kid})
        jwk = data.get("key") if isinstance(data, dict) else None
        if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
            raise KeyFetchError("Plaid's key is not an EC P-256 JWK", retriable=False)
        try:
            key = ECAlgorithm.from_jwk(jwk)
        except (jwt.PyJWTError, ValueError, TypeError):
            raise KeyFetchError("Plaid's key is not a valid JWK", retriable=False) from None
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise KeyFetchError("Plaid's key is not a public key", retriable=False)
        return PlaidKey(key, jwk.get("expired_at") is not None), PLAID_KEY_TTL

    def _token(self, request: InboundRequest) -> tuple[str, str, dict[str, Any]]:
        token = (request.header(self.HEADER) or "").strip(OWS)
        if not token:
            raise SignatureError("Plaid-Verification is missing", reason="missing_signature")
        header, claims = unverified(token)
        kid = header.get("kid")
        if header.get("alg") != "ES256" or not isinstance(kid, str) or not KID.fullmatch(kid):
            raise SignatureError("token is not ES256 with a key id")
        return token, kid, claims

    def _claims(self, claims: dict[str, Any], request: InboundRequest) -> None:
        check_iat(claims, self.tolerance)
        check_body_hash(claims, "request_body_sha256", [sha256_hex(request.body)])

    async def verify(self, request: InboundRequest) -> None:
        token, kid, claims = self._token(request)
        self._claims(claims, request)  # unverified: only to spare forged tokens a fetch
        self._check(token, await self.keys.get(kid), request)


    def _check(self, token: str, key: PlaidKey, request: InboundRequest) -> None:
        if key.expired:
            raise SignatureError("token is signed with an expired Plaid key")
        claims = decode(token, key.key, "ES256", leeway=self.tolerance,
                        options={"require": ["iat", "request_body_sha256"]})
        self._claims(claims, request)

    def delivery_id(self, request: InboundRequest) -> str:
        """No id in Plaid's bodies, and equal bodies recur (SYNC_UPDATES_AVAILABLE): the
        body's hash with the signed ``iat``, both covered by the signature."""
        token = (request.header(self.HEADER) or "").strip(OWS)
        try:
            iat = jwt.decode(token, options={"verify_signature": False}).get("iat")
        except jwt.PyJWTError:
            iat = None
        return super().delivery_id(request) + (f":{iat}" if isinstance(iat, int) else "")

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        body = request.json_object()
        kind, code = body.get("webhook_type"), body.get("webhook_code")
        etype = ".".join(str(p) for p in (kind, code) if isinstance(p, str) and p)
        return [EventDraft(type=etype or "plaid.webhook", payload=body, raw=request.body)]

    def sample_body(self) -> bytes:
        return orjson.dumps({"webhook_type": "TRANSACTIONS",
                             "webhook_code": "SYNC_UPDATES_AVAILABLE", "item_id": "item-1",
                             "environment": self.config.environment}, option=orjson.OPT_INDENT_2)
