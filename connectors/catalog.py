"""HMAC and token providers whose proof does not fit a ``Preset`` row alone.

- ``buildkite``: the preset's ``X-Buildkite-Signature`` or, with ``mode: token``, the plain
  ``X-Buildkite-Token`` Buildkite sends instead (the webhook's setting decides which).
- ``telegram``: a token preset whose event type is the one optional field an Update holds.
- ``contentful``: request verification, HMAC-SHA256 over Contentful's canonical request
  (method, encoded path, the signed headers, body), as ``@contentful/node-apps-toolkit``
  builds it.
- ``figma``: the webhook's passcode travels inside the body (and is stripped from events).
- ``dropbox_sign``: ``event_hash`` inside the body is HMAC-SHA256(API key, event_time +
  event_type); every received delivery is answered ``Hello API Event Received``.

Facts and sources: docs/research/providers/<type>.md.
"""

from __future__ import annotations

import email.errors
import email.parser
import email.policy
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, quote, urlsplit

import orjson
from pydantic import model_validator

from connectors.base import Webhook
from connectors.errors import SignatureError, Unnormalizable
from connectors.options import ConnectorConfig, SecretRequired
from connectors.presets import BY_NAME, PresetConnector
from connectors.request import (
    EventDraft,
    HandshakeReply,
    InboundRequest,
    body_replay_key,
    json_pointer,
    parse_time,
)
from connectors.signing import TokenScheme, matches_any
from connectors.timestamps import (
    CLOCK_SKEW,
    PAST_ONLY,
    ReplayWindow,
    epoch_text,
    parse_epoch_seconds,
)
from connectors.verification import Verification


def _configured(config: ConnectorConfig) -> list[str]:
    values = [config.secret] if config.secret is not None else []
    return [s.get_secret_value() for s in [*values, *config.secrets]]


def _utf8(text: str) -> bytes:
    """Text from a JSON body as bytes, lone surrogates included (never an exception)."""
    return text.encode("utf-8", "surrogatepass")


# -- Buildkite ---------------------------------------------------------------------------

_BUILDKITE_TOKEN = TokenScheme("X-Buildkite-Token")


class BuildkiteConfig(SecretRequired):
    """``mode: signature`` (``X-Buildkite-Signature``, the default) or ``mode: token``
    (``X-Buildkite-Token`` in clear text), as the webhook's Token setting says."""

    mode: Literal["signature", "token"] = "signature"


class BuildkiteConnector(PresetConnector):
    preset = BY_NAME["buildkite"].preset
    source = "buildkite"
    verification = Verification(
        scheme="HMAC-SHA256 hex (`mode: signature`), or a token (`mode: token`)",
        proof="`X-Buildkite-Signature` `timestamp=..,signature=..`, or `X-Buildkite-Token`",
        covers="`{timestamp}.{body}`; the token covers nothing",
        window="the signature's `timestamp=`, 300 s; none with a token",
        dedup="body SHA-256",
        vectors="go-buildkite v4.23.0 test vector, accepted by its ValidatePayload (recorded)")
    Config = BuildkiteConfig

    def __init__(self, connector_id: str, config: ConnectorConfig) -> None:
        super().__init__(connector_id, config)
        self.token_mode = isinstance(config, BuildkiteConfig) and config.mode == "token"

    async def verify(self, request: InboundRequest) -> None:
        if self.token_mode:
            _BUILDKITE_TOKEN.verify(request, self.keys)
        else:
            await super().verify(request)

    def sign(self, body: bytes) -> dict[str, str]:
        if self.token_mode:
            return {"X-Buildkite-Event": "ping", **_BUILDKITE_TOKEN.sign(self.keys[0], body)}
        return super().sign(body)


# -- Telegram ----------------------------------------------------------------------------

_TELEGRAM_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


class TelegramConfig(SecretRequired):
    """The ``secret_token`` given to setWebhook: 1-256 of ``A-Z a-z 0-9 _ -``."""

    @model_validator(mode="after")
    def _bot_api_alphabet(self) -> TelegramConfig:
        if not all(_TELEGRAM_TOKEN.fullmatch(s) for s in _configured(self)):
            raise ValueError("a Telegram secret_token is 1-256 characters of A-Z, a-z, "
                             "0-9, _ and -")
        return self


class TelegramConnector(PresetConnector):
    """An Update holds ``update_id`` and exactly one optional field (``message``,
    ``callback_query``, ...): that field's name is the event type."""

    preset = BY_NAME["telegram"].preset
    source = "telegram"
    Config = TelegramConfig

    def _event(self, request: InboundRequest, payload: dict[str, Any]) -> EventDraft:
        kind = next((k for k, v in payload.items() if k != "update_id"
                     and isinstance(v, dict)), None)
        if kind is None:
            return EventDraft(type="telegram.update", payload=payload)
        inner = payload[kind]
        return EventDraft(type=kind, payload=payload,
                          timestamp=parse_time(inner.get("edit_date") or inner.get("date")))


# -- Contentful --------------------------------------------------------------------------

SIGNATURE = "x-contentful-signature"
SIGNED_HEADERS = "x-contentful-signed-headers"
STAMP = "x-contentful-timestamp"
IDEMPOTENCY = "x-contentful-idempotency-key"
TOPIC = "x-contentful-topic"
_JS_SPACE = ("\t\n\v\f\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
             "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff")  # what String.trim removes
_MIN_STAMP_MS = 1_577_836_800_000  # the toolkit refuses timestamps before 2020
CONTENTFUL_TTL = 30  # the toolkit's verifyRequest default, seconds into the past
# Dropbox Sign retries a callback over about three days, with the first event_time.
DROPBOX_SIGN_TOLERANCE = 3 * 24 * 3600 + CLOCK_SKEW


def _trim(text: str) -> str:
    return text.strip(_JS_SPACE)


def contentful_path(uri: str) -> str:
    """The toolkit's ``getNormalizedEncodedURI``: the query escaped as
    ``querystring.escape`` does, then the whole as ``encodeURI`` does."""
    parts = uri.split("?")  # JS destructuring: a second "?" and what follows are dropped
    pathname, search = parts[0], parts[1] if len(parts) > 1 else ""
    escaped = quote(search, safe="!*'()") if search else ""
    return quote(f"{pathname}?{escaped}" if escaped else pathname, safe=";,/?:@&=+$!*'()#")


def contentful_signature(secret: bytes, method: str, uri: str, headers: Mapping[str, str],
                         body: bytes, stamp_ms: int) -> tuple[str, str]:
    """(hex signature, signed-headers value) for a request carrying ``headers`` (names
    lower-case, values trimmed): the toolkit's ``signRequest``."""
    signed = dict(headers)
    names = list(signed)
    names += [n for n in (SIGNED_HEADERS, STAMP) if n not in signed]
    listed = ",".join(sorted(names))
    signed[STAMP] = str(stamp_ms)
    signed[SIGNED_HEADERS] = listed
    line = ";".join(f"{k}:{signed[k]}" for k in sorted(signed))
    message = "\n".join([method, contentful_path(uri), line]).encode() + b"\n" + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest(), listed


class ContentfulConfig(SecretRequired):
    """The space's webhook signing secret (64 characters, used as text)."""

    @model_validator(mode="after")
    def _sixty_four(self) -> ContentfulConfig:
        if any(len(s) != 64 for s in _configured(self)):
            raise ValueError("a Contentful signing secret is exactly 64 characters")
        return self


class ContentfulConnector(Webhook[ContentfulConfig]):
    source = "contentful"
    verification = Verification(
        scheme="HMAC-SHA256 hex (the 64-character secret as text)",
        proof="`x-contentful-signature`, `-signed-headers`, `-timestamp` (ms)",
        covers=("`METHOD\\npath?query\\nsigned headers (sorted)\\nbody`; the path is "
                "`public_url`'s when set"),
        window="30 s into the past (`tolerance_seconds`)",
        dedup="`X-Contentful-Idempotency-Key` (claimed with the body when not a signed header)",
        vectors="@contentful/node-apps-toolkit signRequest/verifyRequest (recorded)",
    )
    Config = ContentfulConfig

    def _uri(self, request: InboundRequest) -> str:
        """The path Contentful signed: ``public_url``'s path when set (a proxy may
        rewrite ours), with the query the request arrived with."""
        parts = urlsplit(request.url)
        path = urlsplit(self.config.public_url).path if self.config.public_url else parts.path
        return f"{path or '/'}?{parts.query}" if parts.query else path or "/"

    @staticmethod
    def _listed(request: InboundRequest) -> list[str]:
        return _trim(request.header(SIGNED_HEADERS) or "").split(",")

    async def verify(self, request: InboundRequest) -> None:
        given, stamp = request.header(SIGNATURE), request.header(STAMP)
        listed = self._listed(request)
        if not given or not stamp or len(listed) < 2:
            raise SignatureError("signature headers are missing", reason="missing_signature")
        stamp = _trim(stamp)
        if parse_epoch_seconds(stamp, milliseconds=True) is None or int(stamp) <= _MIN_STAMP_MS:
            raise SignatureError("timestamp is missing or malformed",
                                 reason="missing_signature")
        ReplayWindow.of(self.config.tolerance_seconds, CONTENTFUL_TTL, future=PAST_ONLY).check(
            int(stamp) / 1000)
        picked = {k: _trim(v) for k, v in request.headers.items() if k in listed}
        expected = (contentful_signature(secret, request.method, self._uri(request), picked,
                                         request.body, int(stamp))[0].encode()
                    for secret in self.secrets)
        if not matches_any(expected, [_trim(given).encode()]):
            raise SignatureError("signature does not match")

    def delivery_id(self, request: InboundRequest) -> str:
        return _trim(request.header(IDEMPOTENCY) or "") or super().delivery_id(request)

    def replay_key(self, request: InboundRequest) -> str | None:
        if not _trim(request.header(IDEMPOTENCY) or "") or IDEMPOTENCY in self._listed(request):
            return None
        return body_replay_key(request, _trim(request.header(STAMP) or ""))

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        payload = request.json_object()
        topic = _trim(request.header(TOPIC) or "") or "contentful.event"
        return [EventDraft(type=topic, payload=payload, raw=request.body,
                           timestamp=parse_time(json_pointer(payload, "/sys/updatedAt")))]

    def sign(self, body: bytes) -> dict[str, str]:
        stamp = int(time.time() * 1000)
        headers = {TOPIC: "ContentManagement.Entry.publish", IDEMPOTENCY: uuid.uuid4().hex}
        uri = urlsplit(self.config.public_url).path if self.config.public_url else "/"
        sig, listed = contentful_signature(self.secrets[0], "POST", uri or "/", headers, body,
                                           stamp)
        return {**headers, SIGNATURE: sig, SIGNED_HEADERS: listed, STAMP: str(stamp)}

    def sample_body(self) -> bytes:
        return b'{"sys":{"id":"5KsDBWseXY6QegucYAoacS","type":"Entry"},"fields":{}}'


# -- Figma -------------------------------------------------------------------------------

class FigmaConnector(Webhook[SecretRequired]):
    """``secret`` is the passcode given when the webhook was created."""

    source = "figma"
    verification = Verification(
        scheme="shared passcode",
        proof="body `passcode` (stripped from events)",
        covers="nothing: compared with `secret` in constant time",
        window="none",
        dedup="body SHA-256",
        handshake="PING answered 200 after its passcode checks",
        vectors="published (Figma webhook event examples)",
    )
    Config = SecretRequired

    async def verify(self, request: InboundRequest) -> None:
        body = request.json_or_none()
        passcode = body.get("passcode") if isinstance(body, dict) else None
        if not isinstance(passcode, str) or not passcode:
            raise SignatureError("passcode is missing from the body", reason="missing_signature")
        if not matches_any(self.secrets, [_utf8(passcode)]):
            raise SignatureError("passcode does not match")

    async def handshake(self, request: InboundRequest) -> HandshakeReply | None:
        body = request.json_or_none()  # PING: sent when the webhook is created
        if isinstance(body, dict) and body.get("event_type") == "PING":
            return HandshakeReply(200, b"", "text/plain")
        return None

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        payload = {k: v for k, v in request.json_object().items() if k != "passcode"}
        etype = payload.get("event_type")
        return [EventDraft(type=etype if isinstance(etype, str) and etype else "figma.event",
                           payload=payload, timestamp=parse_time(payload.get("timestamp")))]

    def sign(self, body: bytes) -> dict[str, str]:
        return {}  # the proof is the passcode in the body (sample_body carries it)

    def sample_body(self) -> bytes:
        return orjson.dumps({"event_type": "FILE_UPDATE", "file_key": "CL06nJNn5eZLQKDoARMND5",
                             "file_name": "Developer page mockup demo",
                             "passcode": self.secrets[0].decode(),
                             "timestamp": "2020-02-23T20:27:16Z", "webhook_id": "22"})


# -- Dropbox Sign ------------------------------------------------------------------------

HELLO = HandshakeReply(200, b"Hello API Event Received", "text/plain")
_MULTIPART = email.parser.BytesParser(policy=email.policy.HTTP)


class DropboxSignConnector(Webhook[SecretRequired]):
    """``secret`` is the API key of the account (account and app callbacks alike). The
    callback is JSON, or a form whose ``json`` field is (multipart or urlencoded)."""

    source = "dropbox_sign"
    verification = Verification(
        scheme="HMAC-SHA256 hex (key: the API key)",
        proof="body `event.event_hash` (JSON, or a form's `json` field)",
        covers="`event_time` + `event_type` only (the rest of the body is not covered)",
        window="`event_time`: 3 days + 5 min (`tolerance_seconds`)",
        dedup="SHA-256 of the JSON document",
        handshake="every delivery and `callback_test` answered `Hello API Event Received`",
        vectors="dropbox-sign SDK EventCallbackHelper",
    )
    Config = SecretRequired
    acknowledgement: ClassVar[HandshakeReply | None] = HELLO

    def __init__(self, connector_id: str, config: SecretRequired) -> None:
        super().__init__(connector_id, config)
        self._last: tuple[InboundRequest | None, Any] = (None, None)

    def _callback(self, request: InboundRequest) -> Any:
        """The callback's JSON document, None when there is none (parsed once a request)."""
        if self._last[0] is not request:
            self._last = (request, _callback_document(request))
        return self._last[1]

    def _event(self, request: InboundRequest) -> dict[str, Any] | None:
        document = self._callback(request)
        event = document.get("event") if isinstance(document, dict) else None
        return event if isinstance(event, dict) else None

    async def verify(self, request: InboundRequest) -> None:
        event = self._event(request) or {}
        stamp, etype, given = (epoch_text(event.get("event_time")), event.get("event_type"),
                               event.get("event_hash"))
        if not stamp or not isinstance(etype, str) or not isinstance(given, str):
            raise SignatureError("event_hash, event_time or event_type is missing",
                                 reason="missing_signature")
        message = _utf8(stamp + etype)
        expected = (hmac.new(key, message, hashlib.sha256).hexdigest().encode()
                    for key in self.secrets)
        if not matches_any(expected, [_utf8(given)]):
            raise SignatureError("event_hash does not match")
        ReplayWindow.of(self.config.tolerance_seconds, DROPBOX_SIGN_TOLERANCE).check(
            parse_epoch_seconds(stamp), what="event_time")

    async def handshake(self, request: InboundRequest) -> HandshakeReply | None:
        event = self._event(request)
        return HELLO if event is not None and event.get("event_type") == "callback_test" else None

    def delivery_id(self, request: InboundRequest) -> str:
        document = self._callback(request)
        if document is None:
            return super().delivery_id(request)
        canonical = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)  # not the boundary
        return "sha256:" + hashlib.sha256(canonical).hexdigest()

    def normalize(self, request: InboundRequest) -> list[EventDraft]:
        document = self._callback(request)
        event = self._event(request)
        if not isinstance(document, dict) or event is None:
            raise Unnormalizable("callback is not a JSON object with an event")
        etype = event.get("event_type")
        stamp = epoch_text(event.get("event_time"))
        epoch = parse_epoch_seconds(stamp) if stamp else None
        raw = request.body if _content_type(request) == "application/json" else None
        return [EventDraft(type=etype if isinstance(etype, str) and etype else
                           "dropbox_sign.event", payload=document, raw=raw,
                           timestamp=parse_time(epoch))]

    def sign(self, body: bytes) -> dict[str, str]:
        return {}  # the proof is event_hash in the body (sample_body carries it)

    def sample_body(self) -> bytes:
        stamp, etype = str(int(time.time())), "signature_request_sent"
        event_hash = hmac.new(self.secrets[0], (stamp + etype).encode(),
                              hashlib.sha256).hexdigest()
        return orjson.dumps({"event": {"event_type": etype, "event_time": stamp,
                                       "event_hash": event_hash, "event_metadata": {}},
                             "signature_request": {"signature_request_id": "21bb8f947df4"}})


def _content_type(request: InboundRequest) -> str:
    return (request.header("content-type") or "").split(";")[0].strip().lower()


def _callback_document(request: InboundRequest) -> Any:
    ctype = _content_type(request)
    if ctype == "application/x-www-form-urlencoded":
        try:
            field = dict(parse_qsl(request.body.decode())).get("json")
        except UnicodeDecodeError:
            return None
        text: bytes | None = field.encode() if field is not None else None
    elif ctype == "multipart/form-data":
        text = _multipart_field(request.header("content-type") or "", request.body, "json")
    else:
        return request.json_or_none()
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _multipart_field(content_type: str, body: bytes, name: str) -> bytes | None:
    try:
        message = _MULTIPART.parsebytes(b"Content-Type: " + content_type.encode("latin-1")
                                        + b"\r\n\r\n" + body)
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == name:
                payload = part.get_payload(decode=True)
                return payload if isinstance(payload, bytes) else None
    except (ValueError, TypeError, LookupError, UnicodeError, email.errors.MessageError):
        return None
    return None
