"""Plivo voice callbacks: ``X-Plivo-Signature-V3`` is base64 HMAC-SHA256(auth token, the
canonical request + ``.`` + ``X-Plivo-Signature-V3-Nonce``), as Plivo's SDK builds it
(``plivo.utils.signature_v3``); ``X-Plivo-Signature-Ma-V3`` is the same with the main
account's token (put either token, or both, in ``secrets``):

- the URL Plivo calls (``public_url``, required, exactly as configured in Plivo), without
  its query, then ``?`` and the query parameters sorted by name (``k=v&k=v``);
- for a POST with form parameters, the ``?`` is written even with no query, a ``.``
  separates a query from them, and the parameters follow sorted by name as ``namevalue``
  with no separators (several values of one name: each, sorted);
- for a GET, the query alone.

Each header may hold several signatures separated by commas: any one may match. Nothing
is timestamped and there is no delivery id: a callback is deduplicated on the hash of
its query and body. Form-encoded callbacks only. ``X-Plivo-Signature-V2`` (what
messaging callbacks carried) signs the URL and the nonce but not the body, so that a
captured one proves any body: it is not accepted. Facts and sources:
docs/research/providers/plivo.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

from connectors.base import Webhook
from connectors.errors import SignatureError, Unnormalizable
from connectors.options import SecretRequired
from connectors.request import EventDraft, InboundRequest, with_query
from connectors.signing import matches_any, sorted_params
from connectors.verification import Verification

SIGNATURE = "X-Plivo-Signature-V3"
MAIN_ACCOUNT = "X-Plivo-Signature-Ma-V3"
NONCE = "X-Plivo-Signature-V3-Nonce"
FORM = "application/x-www-form-urlencoded"


class PlivoConfig(SecretRequired):
    public_url: str  # the callback URL configured in Plivo, exactly


def _params(text: str) -> dict[str, list[str]]:
    return parse_qs(text, keep_blank_values=True)


def _sorted_query(params: dict[str, list[str]]) -> str:
    return "&".join("&".join(f"{k}={v}" for v in sorted(params[k])) for k in sorted(params))


def canonical(url: str, method: str, form: dict[str, list[str]]) -> str:
    """What Plivo signs before the nonce: ``construct_get_url`` / ``construct_post_url``."""
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    query = _sorted_query(_params(parts.query))
    if method == "GET" or not form:
        return f"{base}?{query}" if query else base
    params = sorted_params((k, v) for k, values in form.items() for v in values)
    return f"{base}?{query}{'.' if query else ''}{params}"


def signature(token: bytes, signed: str, nonce: str) -> str:
    return base64.b64encode(
        hmac.new(token, f"{signed}.{nonce}".encode(), hashlib.sha256).digest()).decode()


class PlivoConnector(Webhook[PlivoConfig]):
    source: ClassVar[str] = "plivo"
    verification = Verification(
        scheme="HMAC-SHA256 base64 (key: the auth token)",
        proof=f"`{SIGNATURE}` or `{MAIN_ACCOUNT}` (comma-separated lists) + `{NONCE}`",
        covers="`public_url` + sorted query + sorted form params (`namevalue`) + `.nonce`",
        window="none",
        dedup="SHA-256 of the query and the body",
        vectors="plivo SDK: `construct_post_url` + `get_signature_v3` sign, "
                "`validate_v3_signature` checks",
    )
    Config = PlivoConfig
    methods: ClassVar[frozenset[str]] = frozenset({"POST", "GET"})

    def _url(self, request: InboundRequest) -> str:
        return with_query(self.config.public_url, request.url)

    def _form(self, request: InboundRequest) -> dict[str, list[str]]:
        if request.method == "GET" or not request.body:
            return {}
        try:
            return _params(request.body.decode())
        except UnicodeDecodeError:
            raise SignatureError("the form body is not UTF-8") from None

    async def verify(self, request: InboundRequest) -> None:
        given = ",".join(v for v in (request.header(SIGNATURE), request.header(MAIN_ACCOUNT))
                         if v)
        nonce = request.header(NONCE)
        if not given or not nonce:
            raise SignatureError("signature or nonce header is missing",
                                 reason="missing_signature")
        signed = canonical(self._url(request), request.method, self._form(request))
        expected = (signature(token, signed, nonce.strip()).encode()
                    for token in self.secrets)
        candidates = [s.strip().encode() for s in given.split(",") if s.strip()]
        if not matches_any(expected, candidates):
            raise SignatureError("signature does not match")

    def delivery_id(self, request: InboundRequest) -> str:
        query = request.url.partition("?")[2].encode()  # a GET's parameters are its query
        return "sha256:" + hashlib.sha256(query + b"\n" + request.body).hexdigest()

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        if request.method == "GET":
            params = _params(request.url.partition("?")[2])
        else:
            try:
                params = _params(request.body.decode())
            except UnicodeDecodeError:
                raise Unnormalizable("form body is not UTF-8") from None
        payload: dict[str, Any] = {k: v[0] if len(v) == 1 else v for k, v in params.items()}
        status = payload.get("Status")
        if "MessageUUID" in payload:
            etype = f"message.{str(status or 'event').lower()}"
        elif "CallUUID" in payload:
            event = payload.get("Event") or payload.get("CallStatus") or "event"
            etype = f"call.{str(event).lower()}"
        else:
            etype = "plivo.event"
        return [EventDraft(type=etype, payload=payload)]

    def sign(self, body: bytes) -> dict[str, str]:
        fake = InboundRequest("POST", self.config.public_url, {"content-type": FORM}, {},
                              body, None, datetime.now(UTC))
        nonce = str(secrets.randbelow(10**20)).zfill(20)
        signed = canonical(self._url(fake), "POST", self._form(fake))
        return {"Content-Type": FORM, NONCE: nonce,
                SIGNATURE: signature(self.secrets[0], signed, nonce)}

    def sample_body(self) -> bytes:
        return b"MessageUUID=db3ce55a-7f1d-11e1-8ea7-1231380bc196&Status=delivered" \
               b"&From=14155551234&To=14155556789"
