"""``gitlab``: GitLab's webhooks, with either of the two proofs GitLab offers.

A webhook's *secret token* is sent as is in ``X-Gitlab-Token`` (it authenticates the
sender, not the body); a webhook's *signing token* (``whsec_...``) signs each delivery
as Standard Webhooks does (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).
``mode`` says which the webhook is set up with; the other is refused, never tried.
"""

from __future__ import annotations

import uuid
from typing import Literal

from connectors.errors import InvalidConnector
from connectors.options import ConnectorConfig, SecretRequired
from connectors.presets import BY_NAME, PresetConnector
from connectors.request import InboundRequest
from connectors.signing import key_from_secret, standard_webhooks_scheme
from connectors.verification import Verification

_GITLAB_SIGNED = standard_webhooks_scheme()


class GitLabConfig(SecretRequired):
    """``mode: token`` (``X-Gitlab-Token``, the webhook's secret token, the default) or
    ``mode: signature`` (the webhook's signing token, ``whsec_...``: Standard Webhooks
    headers), as the webhook is set up in GitLab."""

    mode: Literal["token", "signature"] = "token"


class GitLabConnector(PresetConnector):
    """GitLab webhooks: the secret token in ``X-Gitlab-Token``, or the signing token's
    Standard Webhooks signature."""

    preset = BY_NAME["gitlab"].preset
    source = "gitlab"
    Config = GitLabConfig
    verification = Verification(
        scheme="a token (`mode: token`), or Standard Webhooks HMAC-SHA256 base64, key whsec "
               "(`mode: signature`, the signing token)",
        proof="`X-Gitlab-Token`, or `webhook-signature` 'v1,' + `webhook-id`, "
              "`webhook-timestamp`",
        covers="the token covers nothing; the signature `{delivery_id}.{timestamp}.{body}`",
        window="none with a token; `webhook-timestamp`, 300 s",
        dedup="`X-Gitlab-Event-UUID` (unsigned: the body's SHA-256 is claimed too), or "
              "`webhook-id` (signed)",
        vectors="GitLab's sender code (the token as is); the signing token's deliveries "
                "made by the standardwebhooks SDK, as GitLab's change was tested")

    def __init__(self, connector_id: str, config: ConnectorConfig) -> None:
        super().__init__(connector_id, config)
        self.signed = isinstance(config, GitLabConfig) and config.mode == "signature"
        if self.signed:
            try:
                self.keys = [key_from_secret(s, "whsec") for s in self.secrets]
            except ValueError:
                raise InvalidConnector(f"connector {connector_id!r}: mode signature takes "
                                       "GitLab's signing token (whsec_...)") from None

    async def verify(self, request: InboundRequest) -> None:
        if self.signed:
            _GITLAB_SIGNED.verify(request, self.keys,
                                  tolerance_seconds=self.config.tolerance_seconds)
        else:
            await super().verify(request)

    def delivery_id(self, request: InboundRequest) -> str:
        if self.signed and (value := request.header("webhook-id")):
            return value
        return super().delivery_id(request)

    def replay_key(self, request: InboundRequest) -> str | None:
        return None if self.signed else super().replay_key(request)

    def sign(self, body: bytes) -> dict[str, str]:
        if self.signed:
            return {"X-Gitlab-Event": "Push Hook", **_GITLAB_SIGNED.sign(
                self.secrets[0], body, delivery_id=str(uuid.uuid4()))}
        return super().sign(body)
