"""Ingress authentication beyond signatures, for any connector type.

    config:
      allowed_ips: ["192.0.2.0/24", "2001:db8::/32"]   # the peer (or, from a trusted
                                                        # proxy, the forwarded address)
      basic_auth: {username: hooks, password: ${HOOK_PASSWORD}}
      api_key: {header: X-Api-Key, value: ${HOOK_KEY}}  # or {query: key, value: ...}

Checked before any signature work, in this order: the address (403 ``unauthorized_ip``),
then the credentials (401 ``invalid_credentials``). They compose with the connector's
own signature check, which still runs afterwards. Credentials are compared in constant
time; a list of several (``passwords`` / ``values``) allows rotation.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from connectors.errors import Forbidden, SignatureError
from connectors.options import ApiKey, BasicAuth, parse_networks
from connectors.request import InboundRequest
from connectors.signing import matches_any


def _secrets(one: SecretStr | None, many: list[SecretStr]) -> list[bytes]:
    return [s.get_secret_value().encode() for s in ([one] if one else []) + many]


@dataclass(frozen=True, slots=True)
class Ingress:
    """The checks one connector's config asks for, prepared once."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None
    basic: tuple[bytes, ...]  # every accepted "Basic <base64>" value
    key_header: str | None
    key_query: str | None
    keys: tuple[bytes, ...]

    @classmethod
    def from_config(cls, config: Any) -> Ingress | None:
        ips = getattr(config, "allowed_ips", None)
        basic: BasicAuth | None = getattr(config, "basic_auth", None)
        key: ApiKey | None = getattr(config, "api_key", None)
        if ips is None and basic is None and key is None:
            return None
        expected_basic = tuple(
            b"Basic " + base64.b64encode(basic.username.encode() + b":" + password)
            for password in _secrets(basic.password, basic.passwords)) if basic else ()
        return cls(tuple(parse_networks(ips)) if ips is not None else None, expected_basic,
                   key.header if key else None, key.query if key else None,
                   tuple(_secrets(key.value, key.values)) if key else ())

    def check(self, request: InboundRequest) -> None:
        """Raises Forbidden (403) for an address not allowed, SignatureError (401,
        ``invalid_credentials``) for missing or wrong credentials."""
        if self.networks is not None and not self._allowed(request.remote_addr):
            raise Forbidden("this address may not deliver to this connector",
                            reason="unauthorized_ip")
        if self.basic:
            given = (request.header("authorization") or "").strip().encode()
            if not matches_any(self.basic, [_normalized_basic(given)]):
                raise SignatureError("basic auth credentials are missing or wrong",
                                     reason="invalid_credentials")
        if self.keys:
            value = (request.header(self.key_header) if self.key_header
                     else request.query.get(self.key_query or ""))
            if not matches_any(self.keys, [(value or "").encode()]):
                raise SignatureError("the API key is missing or wrong",
                                     reason="invalid_credentials")

    def _allowed(self, address: str | None) -> bool:
        if address is None or self.networks is None:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)


def _normalized_basic(given: bytes) -> bytes:
    """``Basic <base64>`` with the scheme's case and the padding as senders vary them."""
    scheme, _, token = given.partition(b" ")
    if scheme.lower() != b"basic":
        return given
    try:
        decoded = base64.b64decode(token.strip() + b"=" * (-len(token.strip()) % 4))
    except (binascii.Error, ValueError):
        return given
    return b"Basic " + base64.b64encode(decoded)
