"""Cloudinary notifications: ``X-Cld-Signature`` is the hex SHA-1 (or SHA-256, an account
setting) of ``body + X-Cld-Timestamp + API secret``: a plain hash with the secret
appended, not an HMAC, as Cloudinary's SDKs compute it (``verify_notification_signature``).

The digest is told by the signature's length (40 or 64 hex digits): both are keyed by
the same secret, so accepting either weakens nothing an account's setting would keep.
The timestamp is checked into the past only (7200 s by default, the SDK's ``valid_for``).
Facts and sources: docs/research/providers/cloudinary.md.
"""

from __future__ import annotations

import hashlib
import time
from typing import ClassVar

import orjson

from connectors.base import Webhook
from connectors.errors import SignatureError
from connectors.options import SecretRequired
from connectors.request import EventDraft, InboundRequest, parse_time
from connectors.signing import OWS, matches_any
from connectors.timestamps import PAST_ONLY, ReplayWindow, parse_epoch_seconds
from connectors.verification import Verification

SIGNATURE = "X-Cld-Signature"
TIMESTAMP = "X-Cld-Timestamp"
VALID_FOR = 7200  # seconds: the SDK's default ``valid_for``
_DIGESTS = {40: "sha1", 64: "sha256"}  # hex length -> the account's algorithm


def signature(secret: bytes, body: bytes, timestamp: str, digest: str = "sha1") -> str:
    """What Cloudinary puts in ``X-Cld-Signature``."""
    return hashlib.new(digest, body + timestamp.encode() + secret).hexdigest()


class CloudinaryConnector(Webhook[SecretRequired]):
    """``secret`` is the account's API secret (the one that signs its API calls)."""

    source: ClassVar[str] = "cloudinary"
    verification = Verification(
        scheme="SHA-1 or SHA-256 hex of the message + API secret (a plain hash, not HMAC)",
        proof=f"`{SIGNATURE}` + `{TIMESTAMP}`",
        covers="`{body}{timestamp}`",
        window=f"`{TIMESTAMP}`, unix, {VALID_FOR} s (past only)",
        dedup="body SHA-256",
        vectors="cloudinary SDK test vectors (pycloudinary test_utils) + "
                "`verify_notification_signature`",
    )
    Config = SecretRequired

    async def verify(self, request: InboundRequest) -> None:
        given = (request.header(SIGNATURE) or "").strip(OWS).lower()
        stamp = (request.header(TIMESTAMP) or "").strip(OWS)
        if not given:
            raise SignatureError("signature header is missing", reason="missing_signature")
        ReplayWindow.of(self.config.tolerance_seconds, VALID_FOR, future=PAST_ONLY).check(
            parse_epoch_seconds(stamp) if stamp else None)
        digest = _DIGESTS.get(len(given))
        if digest is None:
            raise SignatureError("signature is neither SHA-1 nor SHA-256 hex")
        expected = (signature(s, request.body, stamp, digest).encode() for s in self.secrets)
        if not matches_any(expected, [given.encode()]):
            raise SignatureError("signature does not match")

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        payload = request.json_object()
        etype = payload.get("notification_type")
        return [EventDraft(type=etype if isinstance(etype, str) and etype else
                           "cloudinary.event", payload=payload,
                           timestamp=parse_time(payload.get("timestamp")), raw=request.body)]

    def sign(self, body: bytes) -> dict[str, str]:
        stamp = str(int(time.time()))
        return {"Content-Type": "application/json", TIMESTAMP: stamp,
                SIGNATURE: signature(self.secrets[0], body, stamp)}

    def sample_body(self) -> bytes:
        return orjson.dumps({"notification_type": "upload", "public_id": "sample",
                             "asset_id": "3515c6000a548515f1134043f9785c2f"})
