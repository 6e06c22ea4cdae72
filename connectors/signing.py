"""HMAC signature schemes as data: one engine, every provider's facts in a frozen dataclass.

A scheme says where the signature is (a header or a query parameter; one value, a list of
versioned values, a list led by the timestamp, or ``key=value`` parameters), what was
signed (a template over the raw body, the timestamp, the delivery id, the method and the
URL), how (digest, encoding, prefix, how the secret becomes a key) and when it stops being
valid (a timestamp in a header, a parameter, the head of the list or the signed body, as
epoch seconds or milliseconds, RFC 3339 or an HTTP date; checked in both directions or
only into the past).

``verify`` checks the raw bytes against every configured secret and every signature in
the header in constant time; signatures of unknown versions are skipped, not errors.
``sign`` produces what an honest sender would send (``gateway sign``, tests).

Timestamps are read and their replay window checked by ``connectors.timestamps``.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import functools
import hmac
import re
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from connectors.errors import SignatureError
from connectors.request import InboundRequest, json_pointer
from connectors.timestamps import (
    PAST_ONLY,
    ReplayWindow,
    epoch_text,
    parse_epoch_seconds,
    parse_http_date_seconds,
    parse_rfc3339_seconds,
)

Digest = Literal["md5", "sha1", "sha256", "sha512"]
Encoding = Literal["hex", "base64", "base64url"]
Layout = Literal["single", "list", "params", "stamped_list"]
TimeFormat = Literal["unix", "unix_ms", "iso", "http"]
Location = Literal["header", "query"]
KeyFormat = Literal["raw", "whsec", "base64", "nfkd", "hex"]

_PLACEHOLDER = re.compile(r"\{(body|timestamp|delivery_id|method|url)\}")

OWS = " \t"  # the whitespace HTTP allows around a header value
_MAX_NUMBERED = 100  # DocuSign Connect: one X-DocuSign-Signature-N per HMAC key


@functools.cache
def _template(signed: str) -> tuple[tuple[bytes, str], ...]:
    """``"{timestamp}.{body}"`` as (literal, placeholder) pairs, parsed once."""
    out = []
    pos = 0
    for m in _PLACEHOLDER.finditer(signed):
        out.append((signed[pos:m.start()].encode(), m.group(1)))
        pos = m.end()
    out.append((signed[pos:].encode(), ""))
    return tuple(out)


def matches_any(expected: Iterable[bytes], given: Sequence[bytes]) -> bool:
    """True when any expected value equals any given one. Every pair is compared in
    constant time, with no early exit that would tell which secret matched."""
    ok = False
    for value in expected:
        for candidate in given:
            ok |= hmac.compare_digest(value, candidate)
    return ok


def sorted_params(pairs: Iterable[tuple[str, str]]) -> str:
    """Form parameters as Twilio, Plivo and Mandrill sign them: each as ``namevalue``,
    sorted by name (a repeated name's values sorted too), nothing in between."""
    return "".join(name + value for name, value in sorted(pairs))


@functools.lru_cache(maxsize=1024)
def _keyed(secret: bytes, digest: str) -> hmac.HMAC:
    return hmac.new(secret, digestmod=digest)


@functools.cache
def _needs(signed: str) -> frozenset[str]:
    return frozenset(name for _, name in _template(signed) if name)


def key_from_secret(secret: bytes, key_format: KeyFormat) -> bytes:
    """The HMAC key a secret stands for: as is, ``whsec_``+base64 (Standard Webhooks,
    Svix), base64, hex (Squarespace), or its UTF-8 in Unicode NFKD form (EasyPost)."""
    if key_format == "raw":
        return secret
    text = secret.decode()
    if key_format == "nfkd":
        return unicodedata.normalize("NFKD", text).encode()
    if key_format == "hex":
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise ValueError("the secret is not valid hex") from None
    if key_format == "whsec":
        text = text.removeprefix("whsec_")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("the secret is not valid base64") from None


@dataclass(frozen=True, slots=True)
class HmacScheme:
    header: str
    fallback_header: str | None = None  # read when ``header`` is absent (a newer name)
    numbered: bool = False  # ``header`` ends in -1; -2, -3, ... carry more (one per key)
    digest: Digest = "sha256"
    encoding: Encoding = "hex"
    prefix: str = ""  # before each signature: "sha256=", "v0=", "v1,"
    prefix_optional: bool = False  # True: a signature without the prefix is read too
    signed: str = "{body}"  # template: {body} {timestamp} {delivery_id} {method} {url}
    layout: Layout = "single"  # stamped_list: "<timestamp>,<sig>[,<sig>...]"
    separator: str = ","  # between list items or parameters
    location: Location = "header"  # query: `header` names a query parameter
    signature_keys: tuple[str, ...] = ("v1",)  # parameters that carry signatures
    timestamp_key: str | None = None  # parameter that carries the timestamp ("t", "ts")
    timestamp_header: str | None = None
    timestamp_pointer: str | None = None  # a timestamp inside the (signed) JSON body
    timestamp_format: TimeFormat = "unix"
    delivery_id_header: str | None = None
    tolerance_seconds: int = 300
    reject_future: bool = True  # False: only too-old timestamps are refused
    key_format: KeyFormat = "raw"

    @property
    def stamped_header(self) -> bool:
        """The timestamp travels in the signature header (a parameter, or the list's head)."""
        return bool(self.timestamp_key) or self.layout == "stamped_list"

    @property
    def timestamped(self) -> bool:
        return bool(self.stamped_header or self.timestamp_header or self.timestamp_pointer)

    # -- building blocks ---------------------------------------------------------------

    def _message(self, body: bytes, fields: dict[str, str]) -> bytes:
        if self.signed == "{body}":
            return body
        parts: list[bytes] = []
        for literal, name in _template(self.signed):
            parts.append(literal)
            if name == "body":
                parts.append(body)
            elif name:
                parts.append(fields.get(name, "").encode())
        return b"".join(parts)

    def _mac(self, key: bytes, message: bytes) -> bytes:
        h = _keyed(key, self.digest).copy()  # a keyed context, copied: no re-keying
        h.update(message)
        return h.digest()

    def _encode(self, mac: bytes) -> str:
        if self.encoding == "hex":
            return mac.hex()
        if self.encoding == "base64url":
            return base64.urlsafe_b64encode(mac).decode().rstrip("=")
        return base64.b64encode(mac).decode()

    def _decode(self, text: str) -> bytes | None:
        try:
            if self.encoding == "hex":
                return bytes.fromhex(text)
            if self.encoding == "base64url":
                return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            return base64.b64decode(text, validate=True)
        except (ValueError, binascii.Error):
            return None

    def _unprefixed(self, item: str) -> bytes | None:
        if item.startswith(self.prefix):
            return self._decode(item[len(self.prefix):])
        return self._decode(item) if self.prefix_optional else None

    def _candidates(self, raw: str) -> tuple[list[bytes], str | None]:
        """The signatures in a header value (unknown versions skipped) and, for
        parameter and stamped layouts, the timestamp."""
        found: list[bytes] = []
        stamp = None
        if self.layout == "single":
            sig = self._unprefixed(raw)
            if sig is not None:
                found.append(sig)
        elif self.layout in ("list", "stamped_list"):
            items = raw.split(self.separator)
            if self.layout == "stamped_list":
                stamp, items = items[0].strip(), items[1:]
            for item in items:
                sig = self._unprefixed(item.strip())
                if sig is not None:
                    found.append(sig)
        else:  # whitespace separates sets too: "t=..,v1=.. t=..,v1=.." (Persona rotating)
            for part in (p for piece in raw.split(self.separator) for p in piece.split()):
                key, _, value = part.strip().partition("=")
                if key in self.signature_keys:
                    sig = self._decode(value)
                    if sig is not None:
                        found.append(sig)
                elif key == self.timestamp_key:
                    stamp = value
        return found, stamp

    def _epoch(self, text: str) -> float | None:
        if self.timestamp_format == "iso":
            return parse_rfc3339_seconds(text)
        if self.timestamp_format == "http":
            return parse_http_date_seconds(text)
        return parse_epoch_seconds(text, milliseconds=self.timestamp_format == "unix_ms")

    def window(self, tolerance: int | None) -> ReplayWindow:
        """The replay window: ``tolerance`` (the connector's) or the provider's."""
        return ReplayWindow.of(tolerance, self.tolerance_seconds,
                               future=None if self.reject_future else PAST_ONLY)

    def _format_time(self, epoch: float) -> str:
        if self.timestamp_format == "unix_ms":
            return str(int(epoch * 1000))
        if self.timestamp_format == "iso":
            return datetime.fromtimestamp(epoch, tz=UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z")
        if self.timestamp_format == "http":
            return email.utils.formatdate(epoch, usegmt=True)
        return str(int(epoch))

    # -- the two directions ------------------------------------------------------------

    def sign(self, secret: bytes, body: bytes, *, timestamp: float | None = None,
             delivery_id: str = "", method: str = "POST", url: str = "") -> dict[str, str]:
        """The headers an honest sender puts on ``body``. A query-located signature is
        returned as a header of the parameter's name, which ``verify`` reads too."""
        key = key_from_secret(secret, self.key_format)
        fields = {"delivery_id": delivery_id, "method": method, "url": url}
        headers: dict[str, str] = {}
        stamp = self._format_time(time.time() if timestamp is None else timestamp)
        if self.stamped_header or self.timestamp_header:
            fields["timestamp"] = stamp
        if self.timestamp_header:
            headers[self.timestamp_header] = stamp
        if self.delivery_id_header and delivery_id:
            headers[self.delivery_id_header] = delivery_id
        sig = self._encode(self._mac(key, self._message(body, fields)))
        if self.layout == "params":
            value = f"{self.timestamp_key}={stamp}{self.separator}" if self.timestamp_key else ""
            headers[self.header] = f"{value}{self.signature_keys[0]}={sig}"
        elif self.layout == "stamped_list":
            headers[self.header] = f"{stamp}{self.separator}{self.prefix}{sig}"
        else:
            headers[self.header] = self.prefix + sig
        return headers

    @property
    def signs_delivery_id(self) -> bool:
        return "delivery_id" in _needs(self.signed)

    def signed_timestamp(self, request: InboundRequest) -> str | None:
        """The timestamp the signature covers, as sent (None for schemes without one)."""
        if self.timestamp_header:
            return (request.header(self.timestamp_header) or "").strip() or None
        if self.stamped_header:
            return self._candidates((self._raw_signature(request) or "").strip())[1]
        return None

    def _raw_signature(self, request: InboundRequest) -> str | None:
        """The signature's carrier: the header, or the query parameter (else a header of
        that name, as ``sign`` writes it for test deliveries and ``gateway sign``)."""
        if self.location == "query":
            value = request.query.get(self.header)
            if value is not None:
                return value
        value = request.header(self.header)
        if value is None and self.fallback_header:
            return request.header(self.fallback_header)
        return value

    def _numbered(self, request: InboundRequest) -> list[bytes]:
        """The signatures in ``<name>-2``, ``<name>-3``, ... up to the first absent one."""
        base = self.header.rsplit("-", 1)[0]
        found: list[bytes] = []
        for n in range(2, _MAX_NUMBERED + 1):
            value = request.header(f"{base}-{n}")
            if value is None:
                break
            found += self._candidates(value.strip())[0]
        return found

    def verify(self, request: InboundRequest, secrets: list[bytes], *,
               tolerance_seconds: int | None = None, url: str | None = None,
               now: float | None = None) -> None:
        raw = self._raw_signature(request)
        if raw is None or not raw.strip():
            raise SignatureError("signature header is missing", reason="missing_signature")
        candidates, stamp = self._candidates(raw.strip())
        if self.numbered:
            candidates += self._numbered(request)
        if not candidates:
            raise SignatureError("no signature of a supported version in the header")

        fields: dict[str, str] = {}
        needs = _needs(self.signed)
        if "method" in needs:
            fields["method"] = request.method
        if "url" in needs:
            fields["url"] = url or request.url
        if "delivery_id" in needs and self.delivery_id_header:
            fields["delivery_id"] = request.header(self.delivery_id_header) or ""
        if self.timestamp_header or self.stamped_header:
            if self.timestamp_header:
                stamp = request.header(self.timestamp_header)
            stamp = stamp.strip(OWS) if stamp else None
            self.window(tolerance_seconds).check(self._epoch(stamp) if stamp else None, now=now)
            assert stamp is not None  # checked: a missing timestamp raised
            fields["timestamp"] = stamp

        message = self._message(request.body, fields)
        if not matches_any((self._mac(secret, message) for secret in secrets), candidates):
            raise SignatureError("signature does not match")

        if self.timestamp_pointer:  # inside the body: trusted only now that it is authentic
            text = epoch_text(json_pointer(request.json_or_none(), self.timestamp_pointer))
            self.window(tolerance_seconds).check(
                self._epoch(text) if text is not None else None, now=now,
                what="the body's timestamp")


@dataclass(frozen=True, slots=True)
class TokenScheme:
    """A shared token in a header (GitLab, Okta, EventBridge API destinations, Postmark's
    basic auth): it authenticates the sender, not the body. Compared in constant time."""

    header: str
    style: Literal["plain", "bearer", "basic"] = "plain"
    timestamped: bool = False
    tolerance_seconds: int = 0
    key_format: KeyFormat = "raw"

    def _expected(self, secret: bytes) -> bytes:
        if self.style == "bearer":
            return b"Bearer " + secret
        if self.style == "basic":
            return b"Basic " + base64.b64encode(secret)
        return secret

    def sign(self, secret: bytes, body: bytes, **_: object) -> dict[str, str]:
        return {self.header: self._expected(secret).decode()}

    def verify(self, request: InboundRequest, secrets: list[bytes], **_: object) -> None:
        raw = request.header(self.header)
        if raw is None or not raw.strip():
            raise SignatureError("token header is missing", reason="missing_signature")
        if not matches_any((self._expected(s) for s in secrets), [raw.strip().encode()]):
            raise SignatureError("token does not match")


def standard_webhooks_scheme(prefix: str = "webhook") -> HmacScheme:
    """Standard Webhooks ``v1``: HMAC-SHA256 over ``id.timestamp.body``, base64, a
    space-separated list of signatures, ``whsec_`` keys; Svix names the headers ``svix-*``."""
    return HmacScheme(f"{prefix}-signature", encoding="base64", prefix="v1,", layout="list",
                      separator=" ", signed="{delivery_id}.{timestamp}.{body}",
                      timestamp_header=f"{prefix}-timestamp",
                      delivery_id_header=f"{prefix}-id", key_format="whsec")
