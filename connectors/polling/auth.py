"""How ``http_poll`` authenticates: bearer, api_key (header or query), basic, or OAuth2
client credentials (a token fetched from ``token_url``, its own home, and refreshed
before it expires). ``Credentials`` gives the headers and query of one request; they go
only to the poller's home (``connectors.polling.http``)."""

from __future__ import annotations

import asyncio
import base64
import time
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

    @model_validator(mode="after")
    def _complete(self) -> Auth:
        need = {"bearer": ("token",), "api_key": ("value",), "basic": ("username", "password"),
                "oauth2": ("token_url", "client_id", "client_secret")}[self.type]
        missing = [n for n in need if getattr(self, n) is None]
        if missing:
            raise ValueError(f"{self.type} auth needs {', '.join(missing)}")
        if self.type == "api_key" and (self.header is None) == (self.query is None):
            raise ValueError("api_key auth needs exactly one of header and query")
        return self


@dataclass
class Token:
    """An OAuth2 access token and when to stop using it."""

    value: str = ""
    expires: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Credentials:
    """The configured headers and query, with the configured ``auth`` added."""

    def __init__(self, headers: dict[str, SecretStr], query: dict[str, str],
                 auth: Auth | None) -> None:
        self.headers = headers
        self.query = query
        self.auth = auth
        self.token = Token()

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
        elif auth.type == "oauth2" and auth.token_url and auth.client_id and \
                auth.client_secret:
            form = {"grant_type": "client_credentials", "client_id": auth.client_id,
                    "client_secret": auth.client_secret.get_secret_value()}
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
            response = await http.request("POST", token_url, data=form,
                                          home=Origin.of(token_url))
            if response.status_code != 200:
                raise PollError(f"token endpoint answered HTTP {response.status_code}")
            body = json_body(response)
            if not isinstance(body, dict) or not body.get("access_token"):
                raise PollError("the token endpoint's answer has no access_token")
            self.token.value = str(body["access_token"])
            try:
                lifetime = float(body.get("expires_in", 3600))
            except (TypeError, ValueError):
                lifetime = 3600.0
            self.token.expires = time.time() + lifetime - min(60.0, lifetime / 2)  # early
            return self.token.value
