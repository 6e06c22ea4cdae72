"""Standard Webhooks: ``v1`` (HMAC-SHA256) and ``v1a`` (Ed25519) signatures, the preset
plus the asymmetric variant."""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import model_validator

from connectors.errors import InvalidConnector, SignatureError
from connectors.options import ConnectorConfig
from connectors.presets.engine import PresetConnector
from connectors.presets.table import PRESETS
from connectors.request import InboundRequest
from connectors.signing import standard_webhooks_scheme
from connectors.timestamps import parse_epoch_seconds

V1 = standard_webhooks_scheme("webhook")  # the preset's scheme: its window applies to v1a


class StandardWebhooksConfig(ConnectorConfig):
    """``secret``/``secrets`` (``whsec_``, for v1 HMAC) and/or ``public_key`` (``whpk_``,
    for v1a Ed25519): a delivery passes when any signature of either kind verifies."""

    @model_validator(mode="after")
    def _need_one(self) -> StandardWebhooksConfig:
        if self.secret is None and not self.secrets and not self.public_key:
            raise ValueError("secret, secrets or public_key is required")
        return self


class StandardWebhooksConnector(PresetConnector):
    """Standard Webhooks: ``v1`` (HMAC-SHA256) and ``v1a`` (Ed25519) signatures."""

    preset = next(p for p in PRESETS if p.name == "standard_webhooks")
    source = "standard_webhooks"
    Config = StandardWebhooksConfig

    def __init__(self, connector_id: str, config: ConnectorConfig) -> None:
        super().__init__(connector_id, config)
        self.public: ed25519.Ed25519PublicKey | None = None
        if config.public_key:
            try:
                raw = base64.b64decode(config.public_key.removeprefix("whpk_"), validate=True)
                self.public = ed25519.Ed25519PublicKey.from_public_bytes(raw)
            except (ValueError, binascii.Error):
                raise InvalidConnector(
                f"connector {connector_id!r}: public_key must be a whpk_ "
                "base64 Ed25519 key") from None

    async def verify(self, request: InboundRequest) -> None:
        failure: SignatureError | None = None
        if self.keys:
            try:
                await super().verify(request)
                return
            except SignatureError as exc:
                failure = exc
                if self.public is None or exc.reason == "stale_timestamp":
                    raise
        assert self.public is not None
        msg_id, stamp = request.header("webhook-id"), request.header("webhook-timestamp")
        raw = request.header("webhook-signature") or ""
        if not msg_id or not stamp or not raw.strip():
            raise failure or SignatureError("signature headers are missing",
                                            reason="missing_signature")
        V1.window(self.config.tolerance_seconds).check(parse_epoch_seconds(stamp.strip()))
        message = f"{msg_id}.{stamp.strip()}.".encode() + request.body
        for item in raw.split():
            if item.startswith("v1a,"):
                try:
                    self.public.verify(base64.b64decode(item[4:], validate=True), message)
                    return
                except (InvalidSignature, ValueError, binascii.Error):
                    continue
        raise SignatureError("signature does not match")
