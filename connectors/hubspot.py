"""HubSpot: signatures v1, v2 and v3, as HubSpot's own SDK checks them.

- v3 (``X-HubSpot-Signature-v3``, ``X-HubSpot-Request-Timestamp`` in ms): base64
  HMAC-SHA256 of ``method + uri + body + timestamp``, 5 minutes into the past;
- v2 (``X-HubSpot-Signature`` with ``X-HubSpot-Signature-Version: v2``): hex SHA-256 (a
  plain hash, not an HMAC) of ``secret + method + uri + body``: workflow actions and CRM
  cards, GET requests included (their body is empty);
- v1 (``X-HubSpot-Signature-Version: v1``): hex SHA-256 of ``secret + body``.

The URI is ``public_url`` plus the request's query string. A delivery carrying v3 is
checked by v3 alone (older headers ride along for compatibility). Bodies are a JSON array
of webhook events (one event each), a JSON object (a workflow action: one event), or
empty (a GET: the query parameters are the payload).
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from connectors.errors import SignatureError
from connectors.presets import BY_NAME, PresetConnector
from connectors.request import EventDraft, InboundRequest, with_query
from connectors.signing import matches_any
from connectors.verification import Verification

_V3 = "X-HubSpot-Signature-v3"


class HubSpotConnector(PresetConnector):
    preset = BY_NAME["hubspot"].preset
    source = "hubspot"
    verification = Verification(
        scheme="SHA-256 hex of the secret + message (v1, v2); HMAC-SHA256 base64 (v3)",
        proof="`X-HubSpot-Signature` + `X-HubSpot-Signature-Version` (v1, v2); "
              "`X-HubSpot-Signature-v3` + `X-HubSpot-Request-Timestamp`",
        covers="v1 `{body}`; v2 `{method}{uri}{body}` (GET deliveries too); "
               "v3 `{method}{uri}{body}{timestamp}`",
        window="v3: `X-HubSpot-Request-Timestamp` (ms), 300 s; v1 and v2 sign none",
        dedup="the first event's `eventId` (signed)",
        vectors="HubSpot's three published vectors + hubspot-api-client `Signature`")
    Config = BY_NAME["hubspot"].Config
    methods: ClassVar[frozenset[str]] = frozenset({"POST", "GET"})

    def _uri(self, request: InboundRequest) -> str:
        return with_query(self.config.public_url or request.url, request.url)

    async def verify(self, request: InboundRequest) -> None:
        if request.header(_V3):
            self.preset.scheme.verify(request, self.keys,
                                      tolerance_seconds=self.config.tolerance_seconds,
                                      url=self._uri(request))
            return
        given = (request.header("X-HubSpot-Signature") or "").strip().lower()
        if not given:
            raise SignatureError("signature header is missing", reason="missing_signature")
        version = (request.header("X-HubSpot-Signature-Version") or "v1").strip().lower()
        if version == "v1":
            signed = request.body
        elif version == "v2":
            signed = request.method.encode() + self._uri(request).encode() + request.body
        else:
            raise SignatureError("unknown signature version")
        expected = (hashlib.sha256(secret + signed).hexdigest().encode()
                    for secret in self.secrets)
        if not matches_any(expected, [given.encode()]):
            raise SignatureError("signature does not match")

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        if request.method == "GET" or not request.body.strip():
            return [EventDraft(type="hubspot.request", payload=dict(request.query))]
        body: Any = request.json()
        if isinstance(body, dict):  # a workflow action or CRM card request
            return [self._event(request, body)]
        return super().normalize(request)
