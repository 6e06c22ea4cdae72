"""HMAC signature schemes as data: one engine, every provider's facts in a frozen dataclass.

A scheme says where the signature is (a header; one value, a list of versioned values, or
``key=value`` parameters), what was signed (a template over the raw body, the timestamp,
the delivery id, the method and the URL), how (digest, encoding, prefix, how the secret
becomes a key) and when it stops being valid (a timestamp in a header, a parameter or
the signed body; checked in both directions or only into the past).

``verify`` checks the raw bytes against every configured secret and every signature in
the header in constant time; signatures of unknown versions are skipped, not errors.
``sign`` produces what an honest sender would send (``gateway sign``, tests).

Timestamps from requests are read by ``parse_epoch_seconds`` and
``parse_rfc3339_seconds``, here and in every connector that checks one: strictly (ASCII
digits, bounded length), so that nothing ``int()`` or ``fromisoformat`` would also accept
(other scripts' digits, signs, underscores, 5000-digit numbers) reaches the arithmetic. A
value they refuse is a malformed timestamp: 401 ``missing_signature``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from connectors.base import InboundRequest, json_pointer
from gateway.errors import SignatureError

Digest = Literal["sha1", "sha256", "sha512"]
Encoding = Literal["hex", "base64", "base64url"]
Layout = Literal["single", "list", "params"]
TimeFormat = Literal["unix", "unix_ms", "iso"]
KeyFormat = Literal["raw", "whsec", "base64"]

_PLACEHOLDER = re.compile(r"\{(body|timestamp|delivery_id|method|url)\}")

MAX_EPOCH_DIGITS = 20  # past the year 5000 in milliseconds; a float holds it
_EPOCH = re.compile(f"[0-9]{{1,{MAX_EPOCH_DIGITS}}}")
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
                      r"(?:[.,][0-9]{1,9})?(?:[Zz]|[+-][0-9]{2}:?[0-9]{2})?")
_RFC3339_MAX = 40
OWS = " \t"  # the whitespace HTTP allows around a header value


def parse_epoch_seconds(text: object, *, milliseconds: bool = False) -> float | None:
    """Epoch seconds (or, with ``milliseconds``, epoch milliseconds) as senders write
    them: 1 to ``MAX_EPOCH_DIGITS`` ASCII digits, nothing else. A sign, a space, a
    fraction, an exponent, ``NaN``, an underscore or digits of another script (all of
    which ``int()`` or ``float()`` would take) give None: a malformed timestamp."""
    if not isinstance(text, str) or not _EPOCH.fullmatch(text):
        return None
    value = int(text)
    return value / 1000 if milliseconds else float(value)


def parse_rfc3339_seconds(text: object) -> float | None:
    """An RFC 3339 date-time (``2026-01-02T03:04:05.678Z``; an offset, or none for UTC;
    up to nanoseconds) as epoch seconds; None for anything else, including the other
    forms ``datetime.fromisoformat`` reads (week dates, any separator, bare dates)."""
    if not isinstance(text, str) or len(text) > _RFC3339_MAX or not _RFC3339.fullmatch(text):
        return None
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1] in "Zz" else text)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError):  # 2026-13-45, offsets of 24 hours, year 1 - 14h
        return None


def epoch_text(value: object) -> str | None:
    """A timestamp found in a JSON body, as text for the parsers: strings as they are,
    integers in decimal; anything else (floats, booleans, objects) is malformed."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


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


@functools.lru_cache(maxsize=1024)
def _keyed(secret: bytes, digest: str) -> hmac.HMAC:
    return hmac.new(secret, digestmod=digest)


@functools.cache
def _needs(signed: str) -> frozenset[str]:
    return frozenset(name for _, name in _template(signed) if name)


def key_from_secret(secret: bytes, key_format: KeyFormat) -> bytes:
    """The HMAC key a secret stands for: as is, ``whsec_``+base64 (Standard Webhooks,
    Svix), or base64."""
    if key_format == "raw":
        return secret
    text = secret.decode()
    if key_format == "whsec":
        text = text.removeprefix("whsec_")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("the secret is not valid base64") from None


@dataclass(frozen=True, slots=True)
class HmacScheme:
    header: str
    digest: Digest = "sha256"
    encoding: Encoding = "hex"
    prefix: str = ""  # before each signature: "sha256=", "v0=", "v1,"
    signed: str = "{body}"  # template: {body} {timestamp} {delivery_id} {method} {url}
    layout: Layout = "single"
    separator: str = ","  # between list items or parameters
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
    def timestamped(self) -> bool:
        return bool(self.timestamp_key or self.timestamp_header or self.timestamp_pointer)

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

    def _candidates(self, raw: str) -> tuple[list[bytes], str | None]:
        """The signatures in a header value (unknown versions skipped) and, for
        parameter layouts, the timestamp parameter."""
        found: list[bytes] = []
        stamp = None
        if self.layout == "single":
            if raw.startswith(self.prefix):
                sig = self._decode(raw[len(self.prefix):])
                if sig is not None:
                    found.append(sig)
        elif self.layout == "list":
            for item in raw.split(self.separator):
                item = item.strip()
                if item.startswith(self.prefix):
                    sig = self._decode(item[len(self.prefix):])
                    if sig is not None:
                        found.append(sig)
        else:
            for part in raw.split(self.separator):
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
        return parse_epoch_seconds(text, milliseconds=self.timestamp_format == "unix_ms")

    def _check_window(self, stamp: float, tolerance: int | None, now: float | None) -> None:
        window = self.tolerance_seconds if tolerance is None else tolerance
        age = (time.time() if now is None else now) - stamp
        if age > window or (self.reject_future and -age > window):
            raise SignatureError("timestamp is outside the replay window",
                                 reason="stale_timestamp")

    def _format_time(self, epoch: float) -> str:
        if self.timestamp_format == "unix_ms":
            return str(int(epoch * 1000))
        if self.timestamp_format == "iso":
            return datetime.fromtimestamp(epoch, tz=UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z")
        return str(int(epoch))

    # -- the two directions ------------------------------------------------------------

    def sign(self, secret: bytes, body: bytes, *, timestamp: float | None = None,
             delivery_id: str = "", method: str = "POST", url: str = "") -> dict[str, str]:
        """The headers an honest sender puts on ``body``."""
        key = key_from_secret(secret, self.key_format)
        fields = {"delivery_id": delivery_id, "method": method, "url": url}
        headers: dict[str, str] = {}
        stamp = self._format_time(time.time() if timestamp is None else timestamp)
        if self.timestamp_key or self.timestamp_header:
            fields["timestamp"] = stamp
        if self.timestamp_header:
            headers[self.timestamp_header] = stamp
        if self.delivery_id_header and delivery_id:
            headers[self.delivery_id_header] = delivery_id
        sig = self._encode(self._mac(key, self._message(body, fields)))
        if self.layout == "params":
            value = f"{self.timestamp_key}={stamp}{self.separator}" if self.timestamp_key else ""
            headers[self.header] = f"{value}{self.signature_keys[0]}={sig}"
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
        if self.timestamp_key:
            return self._candidates((request.header(self.header) or "").strip())[1]
        return None

    def verify(self, request: InboundRequest, secrets: list[bytes], *,
               tolerance_seconds: int | None = None, url: str | None = None,
               now: float | None = None) -> None:
        raw = request.header(self.header)
        if raw is None or not raw.strip():
            raise SignatureError("signature header is missing", reason="missing_signature")
        candidates, stamp = self._candidates(raw.strip())
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
        if self.timestamp_header or self.timestamp_key:
            if self.timestamp_header:
                stamp = request.header(self.timestamp_header)
            stamp = stamp.strip(OWS) if stamp else None
            epoch = self._epoch(stamp) if stamp else None
            if stamp is None or epoch is None:
                raise SignatureError("timestamp is missing or malformed",
                                     reason="missing_signature")
            self._check_window(epoch, tolerance_seconds, now)
            fields["timestamp"] = stamp

        message = self._message(request.body, fields)
        if not matches_any((self._mac(secret, message) for secret in secrets), candidates):
            raise SignatureError("signature does not match")

        if self.timestamp_pointer:  # inside the body: trusted only now that it is authentic
            text = epoch_text(json_pointer(request.json_or_none(), self.timestamp_pointer))
            epoch = self._epoch(text) if text is not None else None
            if epoch is None:
                raise SignatureError("timestamp is missing from the body",
                                     reason="missing_signature")
            self._check_window(epoch, tolerance_seconds, now)


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
