"""The HTTP edge: uvicorn (httptools, uvloop) with the limits a public listener needs.

uvicorn keeps no bound on header size or count for httptools and no deadline for a
request's headers or body, so the protocol below adds them, configured under
``server:`` (``ServerConfig``):

- request line and headers larger than ``max_header_bytes``, or more than
  ``max_headers`` headers: ``431`` and the connection is closed. Bytes of headers not yet
  complete are counted as they arrive, so a header that never ends cannot grow memory;
- no complete headers ``header_timeout_seconds`` after the connection opened (or after
  the first byte of a keep-alive connection's next request), or no complete body
  ``body_timeout_seconds`` after the headers: the connection is closed (the request path
  sees a disconnect and audits it). A request only writes its deadline; one sweep per
  server, every ``SWEEP_EVERY`` seconds, closes the connections past theirs;
- more than ``max_connections`` open connections, or ``max_concurrent_requests``
  requests in flight: ``503`` with ``Retry-After`` (per worker process);
- ``X-Forwarded-For`` is believed only from ``trusted_proxies`` (none by default);
- on SIGTERM, requests in flight get ``shutdown_timeout_seconds``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from gateway.config import ServerConfig

RETRY_AFTER = 5
LINGER = 2.0  # seconds a refused connection is read from (and dropped) before closing
SWEEP_EVERY = 0.25  # seconds between two looks at the connections' deadlines


def _raw_answer(status: int, reason: str, code: str, detail: str,
                extra: bytes = b"") -> bytes:
    body = b'{"error":"%s","detail":"%s"}' % (code.encode(), detail.encode())
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"%sconnection: close\r\n\r\n%s" % (status, reason.encode(), len(body), extra, body))


_TOO_LARGE = _raw_answer(431, "Request Header Fields Too Large", "headers_too_large",
                         "request headers are larger or more numerous than allowed")
_BUSY = _raw_answer(503, "Service Unavailable", "busy", "too many connections",
                    b"retry-after: %d\r\n" % RETRY_AFTER)


async def _busy(scope: Any, receive: Any, send: Any) -> None:
    """The answer to a request past ``max_concurrent_requests``."""
    body = b'{"error":"busy","detail":"too many requests in flight"}'
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)),
        (b"retry-after", b"%d" % RETRY_AFTER), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class _HeadersTooLarge(Exception):
    pass


class GatewayConfig(uvicorn.Config):
    """uvicorn's config plus the edge's limits (picklable: worker processes get it)."""

    def __init__(self, app: Any, limits: ServerConfig, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits


class _Sweeper:
    """Closes the connections whose deadline passed, every ``SWEEP_EVERY`` seconds: one
    timer per server instead of two per request (a request only writes a float)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        self.loop = loop
        self.connections = connections
        self.handle = loop.call_later(SWEEP_EVERY, self.sweep)

    def sweep(self) -> None:
        now = self.loop.time()
        for protocol in list(self.connections):
            deadline = getattr(protocol, "deadline", None)
            if deadline is not None and deadline <= now:
                protocol.expired()
        self.handle = self.loop.call_later(SWEEP_EVERY, self.sweep)


class LimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of ``GatewayConfig.limits``."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.limits: ServerConfig = getattr(config, "limits", None) or ServerConfig()
        self.deadline: float | None = None  # loop time; the sweeper closes us past it
        self._in_headers = True
        self._pending = 0  # bytes received while the headers are not complete
        self._too_large = False  # the complete headers are past a limit
        self._discarding = False  # refused: what still arrives is dropped until closing
        state = self.server_state
        if getattr(state, "sweeper", None) is None:
            state.sweeper = _Sweeper(self.loop, self.connections)  # type: ignore[attr-defined]

    def expired(self) -> None:
        self.deadline = None
        if not self.transport.is_closing():
            self.transport.close()  # the request path sees a disconnect

    # -- connection ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            transport.write(_BUSY)
            transport.close()
            return
        self.deadline = self.loop.time() + self.limits.header_timeout_seconds

    def connection_lost(self, exc: Exception | None) -> None:
        self.deadline = None
        super().connection_lost(exc)

    def _refuse_headers(self) -> None:
        """431, then a lingering close: the rest of what the client sends is read and
        dropped for ``LINGER`` seconds, so that closing with unread data (a TCP reset)
        does not destroy the answer before the client read it."""
        if self.transport.is_closing() or self._discarding:
            return
        self._discarding = True
        self.transport.write(_TOO_LARGE)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.deadline = self.loop.time() + LINGER

    def data_received(self, data: bytes) -> None:
        if self._discarding or self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._too_large:
                self._refuse_headers()
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()
        if self._in_headers:  # headers still incomplete: bound what they may hold
            self._pending += len(data)
            if self._pending > self.limits.max_header_bytes:
                self._refuse_headers()

    # -- parser callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._pending = 0
        if self.deadline is None:  # the next request on a kept-alive connection
            self.deadline = self.loop.time() + self.limits.header_timeout_seconds

    def on_headers_complete(self) -> None:
        limits = self.limits
        headers = self.headers
        if len(headers) > limits.max_headers or len(self.url) + sum(
                len(k) + len(v) + 4 for k, v in headers) > limits.max_header_bytes:
            self._too_large = True
            raise _HeadersTooLarge
        self._in_headers = False
        self.deadline = self.loop.time() + limits.body_timeout_seconds
        if len(self.tasks) >= limits.max_concurrent_requests:
            app, self.app = self.app, _busy
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        else:
            super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.deadline = None
        super().on_message_complete()


def uvicorn_config(app: Any, limits: ServerConfig, *, host: str, port: int,
                   workers: int = 1, loop: str = "uvloop", **kwargs: Any) -> GatewayConfig:
    """How the gateway is served, by ``gateway run`` and by the tests alike."""
    trusted = limits.trusted_proxies
    return GatewayConfig(
        app, limits, host=host, port=port, workers=workers, http=LimitedProtocol,
        loop=loop, log_level="warning", access_log=False, server_header=False,
        log_config=None, proxy_headers=bool(trusted),
        forwarded_allow_ips=list(trusted) if trusted else None,
        timeout_graceful_shutdown=int(limits.shutdown_timeout_seconds + 0.999),
        **kwargs)


def serve(config: GatewayConfig) -> None:
    """Run the server (with ``config.workers`` processes), as ``uvicorn.run`` would."""
    server = uvicorn.Server(config)
    if config.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        server.run()
