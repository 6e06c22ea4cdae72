"""How ``http_poll`` authenticates: bearer, api_key (header or query), basic, or OAuth2
(an access token from ``token_url``, its own home, by the client-credentials grant, or
the refresh-token grant when ``refresh_token`` is set; refreshed before it expires).
``Credentials`` gives the headers and query of one request; they go only to the
poller's home (``connectors.polling.http``).

Access tokens are derived credentials: one per set of credentials, shared by every
poller configured with the same ones (``TOKENS``), fetched once at a time. A token
endpoint that rotates the refresh token is followed: the new one is used from then on
and handed to ``on_rotation`` (the gateway writes it back where it came from)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from connectors.errors import PollError
from connectors.polling.http import PollHttp
from connectors.polling.origins import HttpUrlText, Origin
from connectors.polling.values import json_body


class Auth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["bearer", "api_key", "basic", "oauth2"]
    token: SecretStr | None = None  # bearer
    header: str | None = None  # api_key in a header ...
    query: str | None = None  # ... or in the query
    value: SecretStr | None = None  # api_key
    username: str | None = None  # basic
    password: SecretStr | None = None
    token_url: HttpUrlText | None = None  # oauth2 client credentials (its own trusted origin)
    client_id: str | None = None
    client_secret: SecretStr | None = None
    scope: str | None = None
    refresh_token: SecretStr | None = None  # oauth2: the refresh-token grant

    @model_validator(mode="after")
    def _complete(self) -> Auth:
        need = {"bearer": ("token",), "api_key": ("value",), "basic": ("username", "password"),
                "oauth2": ("token_url", "client_id")}[self.type]
        missing = [n for n in need if getattr(self, n) is None]
        if missing:
            raise ValueError(f"{self.type} auth needs {', '.join(missing)}")
        if self.type == "api_key" and (self.header is None) == (self.query is None):
            raise ValueError("api_key auth needs exactly one of header and query")
        if self.type == "oauth2" and self.client_secret is None and self.refresh_token is None:
            raise ValueError("oauth2 auth needs client_secret or refresh_token")
        return self

    def token_key(self) -> str:
        """Which access token these credentials share (a digest: no secret in it)."""
        parts = [self.token_url or "", self.client_id or "", self.scope or "",
                 self.client_secret.get_secret_value() if self.client_secret else "",
                 self.refresh_token.get_secret_value() if self.refresh_token else ""]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclass(eq=False)
class Token:
    """An OAuth2 access token and when to stop using it; the refresh token in use."""

    value: str = ""
    expires: float = 0.0
    refresh: str = ""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


# credentials' token_key -> their token, while a poller uses them
TOKENS: weakref.WeakValueDictionary[str, Token] = weakref.WeakValueDictionary()

Rotation = Callable[[str, str], Awaitable[bool]]


def shared_token(auth: Auth | None) -> Token:
    if auth is None or auth.type != "oauth2":
        return Token()
    key = auth.token_key()
    token = TOKENS.get(key)
    if token is None:
        token = TOKENS[key] = Token(
            refresh=auth.refresh_token.get_secret_value() if auth.refresh_token else "")
    return token


class Credentials:
    """The configured headers and query, with the configured ``auth`` added."""

    def __init__(self, headers: dict[str, SecretStr], query: dict[str, str],
                 auth: Auth | None) -> None:
        self.headers = headers
        self.query = query
        self.auth = auth
        self.token = shared_token(auth)
        self.on_rotation: Rotation | None = None  # set by the gateway

    async def __call__(self, http: PollHttp) -> tuple[dict[str, str], dict[str, str]]:
        """Fresh dicts of the headers and query parameters of one request."""
        headers = {k: v.get_secret_value() for k, v in self.headers.items()}
        query = dict(self.query)
        auth = self.auth
        if auth is None:
            return headers, query
        if auth.type == "bearer" and auth.token:
            headers["Authorization"] = "Bearer " + auth.token.get_secret_value()
        elif auth.type == "api_key" and auth.value:
            target = headers if auth.header else query
            target[auth.header or auth.query or ""] = auth.value.get_secret_value()
        elif auth.type == "basic" and auth.password:
            raw = f"{auth.username}:{auth.password.get_secret_value()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        elif auth.type == "oauth2" and auth.token_url and auth.client_id:
            form = {"client_id": auth.client_id}
            if auth.client_secret:
                form["client_secret"] = auth.client_secret.get_secret_value()
            if auth.scope:
                form["scope"] = auth.scope
            headers["Authorization"] = "Bearer " + await self._oauth2(http, auth.token_url,
                                                                      form)
        return headers, query

    async def _oauth2(self, http: PollHttp, token_url: str, form: dict[str, str]) -> str:
        """A client-credentials token, refreshed before it expires (a minute, or half its
        lifetime when that is shorter)."""
        async with self.token.lock:
            if self.token.value and time.time() < self.token.expires:
                return self.token.value
            refresh = self.token.refresh
            form = {**form, **({"grant_type": "refresh_token", "refresh_token": refresh}
                               if refresh else {"grant_type": "client_credentials"})}
            response = await http.request("POST", token_url, data=form,
                                          home=Origin.of(token_url))
            if response.status_code != 200:
                raise PollError(f"token endpoint answered HTTP {response.status_code}")
            body = json_body(response)
            if not isinstance(body, dict) or not body.get("access_token"):
                raise PollError("the token endpoint's answer has no access_token")
            self.token.value = str(body["access_token"])
            rotated = body.get("refresh_token")
            if refresh and isinstance(rotated, str) and rotated and rotated != refresh:
                self.token.refresh = rotated  # the old one may be spent already
                if self.on_rotation is not None:
                    await self.on_rotation(refresh, rotated)
            try:
                lifetime = float(body.get("expires_in", 3600))
            except (TypeError, ValueError):
                lifetime = 3600.0
            self.token.expires = time.time() + lifetime - min(60.0, lifetime / 2)  # early
            return self.token.value
