"""The dashboard at the admin listener's ``/``: a page and a script served from the
package (``gateway/static``; no front-end build, at run time or ever), reading the same
admin API as the CLI.

Signing in posts the admin token once; the answer sets a session cookie that is not the
token but an HMAC of a fixed label under it, so it changes when the token does and
tells nothing of it. The cookie is ``HttpOnly`` and ``SameSite=Strict`` (``Secure``
behind HTTPS); a call it authorizes that changes something must also come from the
dashboard's own origin. Every page is sent with a Content-Security-Policy that allows
only the gateway's own script and style, and the script writes what it shows as text,
never as markup, so a delivery's body or headers cannot run in the operator's browser.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from html import escape
from pathlib import Path
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

COOKIE = "gateway_admin"
STATIC = Path(__file__).parent / "static"
FILES = {"app.js": "text/javascript", "style.css": "text/css"}
MAX_FORM = 4096
HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self';"
                               " connect-src 'self'; img-src 'self'; form-action 'self';"
                               " frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff", "referrer-policy": "same-origin",
    "cache-control": "no-store", "x-frame-options": "DENY"}
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def session_value(token: str) -> str:
    return hmac.new(token.encode(), b"event-gateway admin session", hashlib.sha256).hexdigest()


class Dashboard:
    def __init__(self, token: str) -> None:
        self.token = token.encode()
        self.session = session_value(token).encode()
        self.pages = {name: (STATIC / name).read_bytes()
                      for name in ("index.html", "login.html", *FILES)}

    def routes(self) -> list[BaseRoute]:
        return [Route("/", self.index, methods=["GET"]),
                Route("/login", self.login, methods=["POST"]),
                Route("/logout", self.logout, methods=["POST"]),
                Route("/static/{name}", self.static, methods=["GET"])]

    def signed_in(self, request: Request) -> bool:
        """The session cookie, and for a change, the dashboard's own origin."""
        given = request.cookies.get(COOKIE, "").encode()
        if not hmac.compare_digest(given, self.session):
            return False
        origin = request.headers.get("origin")
        return request.method not in UNSAFE or origin is None or origin == _origin(request)

    def _page(self, name: str, status: int = 200, message: str = "") -> Response:
        body = self.pages[name].replace(b"{{message}}", escape(message).encode())
        return Response(body, status, headers=HEADERS, media_type="text/html")

    async def index(self, request: Request) -> Response:
        return self._page("index.html" if self.signed_in(request) else "login.html")

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in FILES:
            return Response(b"not found", 404, headers=HEADERS, media_type="text/plain")
        return Response(self.pages[name], headers=HEADERS, media_type=FILES[name])

    async def login(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and origin != _origin(request):
            return self._page("login.html", 403, "Sign in from the dashboard itself.")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                return self._page("login.html", 413, "That form is too large.")
        given = (parse_qs(body.decode("utf-8", "replace")).get("token") or [""])[0]
        if not hmac.compare_digest(given.encode(), self.token):
            await asyncio.sleep(0.5)  # one guess per half second and connection
            return self._page("login.html", 401, "That is not the admin token.")
        response = Response(b"", 303, headers={**HEADERS, "location": "/"})
        response.set_cookie(COOKIE, self.session.decode(), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
        return response

    async def logout(self, request: Request) -> Response:
        response = Response(b"", 303, headers={**HEADERS, "location": "/"})
        response.delete_cookie(COOKIE, path="/")
        return response


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}"

