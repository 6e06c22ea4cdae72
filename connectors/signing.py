"""HMAC signature schemes as data: header, signed string, digest, encoding, prefix, window.

One engine for every provider that differs only in these facts. A scheme is a frozen
dataclass; ``verify`` checks the raw request bytes against every configured secret in
constant time and ``sign`` produces the header an honest sender would send (used by
``gateway sign`` and by tests that cross-check against providers' own vectors).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import re
import time
from dataclasses import dataclass
from typing import Literal

from connectors.base import InboundRequest
from gateway.errors import SignatureError

Digest = Literal["sha1", "sha256", "sha512"]
Encoding = Literal["hex", "base64"]

_PLACEHOLDER = re.compile(r"\{(body|timestamp|delivery_id|method|url)\}")


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


@functools.lru_cache(maxsize=1024)
def _keyed(secret: bytes, digest: str) -> hmac.HMAC:
    return hmac.new(secret, digestmod=digest)


@functools.cache
def _needs(signed: str) -> frozenset[str]:
    return frozenset(name for _, name in _template(signed) if name)


@dataclass(frozen=True, slots=True)
class HmacScheme:
    header: str
    digest: Digest = "sha256"
    encoding: Encoding = "hex"
    prefix: str = ""
    signed: str = "{body}"  # template: {body} {timestamp} {delivery_id} {method} {url}
    timestamp_header: str | None = None
    delivery_id_header: str | None = None
    tolerance_seconds: int = 300

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

    def _mac(self, secret: bytes, message: bytes) -> bytes:
        h = _keyed(secret, self.digest).copy()  # a keyed context, copied: no re-keying
        h.update(message)
        return h.digest()

    def _encode(self, mac: bytes) -> str:
        return mac.hex() if self.encoding == "hex" else base64.b64encode(mac).decode()

    def _decode(self, text: str) -> bytes | None:
        try:
            if self.encoding == "hex":
                return bytes.fromhex(text)
            return base64.b64decode(text, validate=True)
        except (ValueError, binascii.Error):
            return None

    def sign(self, secret: bytes, body: bytes, *, timestamp: int | None = None,
             delivery_id: str = "", method: str = "POST", url: str = "") -> dict[str, str]:
        """The headers an honest sender puts on ``body``."""
        fields = {"delivery_id": delivery_id, "method": method, "url": url}
        headers: dict[str, str] = {}
        if self.timestamp_header:
            ts = str(int(time.time()) if timestamp is None else timestamp)
            fields["timestamp"] = ts
            headers[self.timestamp_header] = ts
        if self.delivery_id_header and delivery_id:
            headers[self.delivery_id_header] = delivery_id
        headers[self.header] = self.prefix + self._encode(
            self._mac(secret, self._message(body, fields)))
        return headers

    def verify(self, request: InboundRequest, secrets: list[bytes], *,
               tolerance_seconds: int | None = None, url: str | None = None,
               now: float | None = None) -> None:
        raw = request.header(self.header)
        if raw is None or not raw.strip():
            raise SignatureError("signature header is missing", reason="missing_signature")
        raw = raw.strip()
        if not raw.startswith(self.prefix):
            raise SignatureError("signature header is malformed")
        given = self._decode(raw[len(self.prefix):])
        if given is None:
            raise SignatureError("signature header is malformed")

        fields: dict[str, str] = {}
        needs = _needs(self.signed)
        if "method" in needs:
            fields["method"] = request.method
        if "url" in needs:
            fields["url"] = url or request.url
        if "delivery_id" in needs and self.delivery_id_header:
            fields["delivery_id"] = request.header(self.delivery_id_header) or ""
        if self.timestamp_header:
            ts = request.header(self.timestamp_header)
            if ts is None or not ts.strip().isdigit():
                raise SignatureError("timestamp header is missing or malformed",
                                     reason="missing_signature")
            window = self.tolerance_seconds if tolerance_seconds is None else tolerance_seconds
            current = time.time() if now is None else now
            if abs(current - int(ts)) > window:
                raise SignatureError("timestamp is outside the replay window",
                                     reason="stale_timestamp")
            fields["timestamp"] = ts.strip()

        message = self._message(request.body, fields)
        ok = False
        for secret in secrets:  # every secret is tried: no early exit reveals which matched
            ok |= hmac.compare_digest(self._mac(secret, message), given)
        if not ok:
            raise SignatureError("signature does not match")
