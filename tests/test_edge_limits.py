"""The HTTP edge's limits, tried with real sockets against a real uvicorn server: huge or
numerous headers, headers or bodies that never finish, too many connections or requests,
spoofed X-Forwarded-For, a client's X-Request-Id. A normal client is served meanwhile."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import (
    GatewayProcess,
    ThreadServer,
    base_config,
    thread_server,
    write_config,
)

pytestmark = pytest.mark.kafka

SECRET = "edge-secret-4b1d"
LIMITS = {"max_header_bytes": 8192, "max_headers": 50, "header_timeout_seconds": 1.0,
          "body_timeout_seconds": 1.0, "max_connections": 40, "max_concurrent_requests": 8}


def signed(body: bytes) -> dict[str, str]:
    mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Signature": mac, "Content-Type": "application/json",
            "X-Delivery-Id": uuid.uuid4().hex}


def edge(kafka_bootstrap: str, data_dir: Path, tmp_path: Path, topic: str,
         **server: Any) -> Any:
    cfg = base_config(kafka_bootstrap, data_dir, topic)
    cfg["server"].update(LIMITS, **server)
    cfg["connectors"] = {"hook": {"type": "webhook", "config": {
        "secret": SECRET, "id_header": "X-Delivery-Id"}}}
    return thread_server(write_config(tmp_path / "gateway.yaml", cfg))


@pytest.fixture
def server(kafka_bootstrap: str, data_dir: Path, tmp_path: Path, topic_prefix: str
           ) -> Iterator[ThreadServer]:
    with edge(kafka_bootstrap, data_dir, tmp_path, f"{topic_prefix}.events") as s:
        yield s


def connect(server: ThreadServer) -> socket.socket:
    port = int(server.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def served(server: ThreadServer) -> bool:
    body = b'{"ok": true, "n": "%s"}' % uuid.uuid4().hex.encode()
    r = httpx.post(f"{server.url}/webhooks/hook", content=body, headers=signed(body))
    return r.status_code == 202


def test_huge_and_numerous_headers_get_431(server: ThreadServer) -> None:
    for head in (b"X-Big: " + b"a" * 64 * 1024 + b"\r\n",  # one header past the bound
                 b"".join(b"X-H%d: v\r\n" % i for i in range(200)),  # too many
                 b"X-Big: " + b"a" * 10 * 1024 * 1024):  # ... and one that never ends
        sock = connect(server)
        sock.sendall(b"POST /webhooks/hook HTTP/1.1\r\nHost: x\r\n" + head)
        with contextlib.suppress(OSError):  # the server may close before it read it all
            sock.sendall(b"\r\n" + b"x" * 1024 * 1024)
        answer = read_all(sock)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
        assert b'"error":"headers_too_large"' in answer
    assert served(server)


def test_half_sent_headers_are_closed_after_the_deadline(server: ThreadServer) -> None:
    socks = [connect(server) for _ in range(30)]
    for sock in socks:
        sock.sendall(b"POST /webhooks/hook HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    idle = connect(server)  # and one that never sends a byte
    started = time.monotonic()
    assert served(server)  # a normal client is served meanwhile
    for sock in [*socks, idle]:
        assert read_all(sock) == b""  # closed
        sock.close()
    assert time.monotonic() - started < 4  # header_timeout_seconds is 1


def test_a_stalled_body_is_closed_and_audited(server: ThreadServer) -> None:
    sock = connect(server)
    sock.sendall(b"POST /webhooks/hook HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n"
                 b"X-Signature: 00\r\n\r\n" + b"{" * 1000)
    started = time.monotonic()
    assert read_all(sock) == b""
    assert time.monotonic() - started < 4  # body_timeout_seconds is 1
    sock.close()
    assert server.wait_audit(lambda line: line["reason"] == "client_disconnect")
    assert served(server)


def test_requests_past_the_concurrency_cap_get_503(server: ThreadServer) -> None:
    stalled = []
    for _ in range(8):  # max_concurrent_requests: each holds a request in flight
        sock = connect(server)
        sock.sendall(b"POST /webhooks/hook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                     b"\r\n{")
        stalled.append(sock)
    time.sleep(0.2)
    r = httpx.post(f"{server.url}/webhooks/hook", content=b"{}", headers=signed(b"{}"))
    assert r.status_code == 503
    assert r.json()["error"] == "busy"
    assert r.headers["retry-after"] == "5"
    for sock in stalled:
        sock.close()
    time.sleep(0.3)
    assert served(server)


def test_connections_past_the_cap_get_503(kafka_bootstrap: str, data_dir: Path,
                                          tmp_path: Path, topic_prefix: str) -> None:
    with edge(kafka_bootstrap, data_dir, tmp_path, f"{topic_prefix}.events",
              max_connections=5, header_timeout_seconds=5.0) as server:
        held = [connect(server) for _ in range(5)]
        time.sleep(0.2)
        extra = connect(server)
        answer = read_all(extra)
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:100]
        assert b"retry-after: 5" in answer
        for sock in [extra, *held]:
            sock.close()
        time.sleep(0.3)
        assert served(server)


def test_forwarded_for_is_believed_only_from_trusted_proxies(
        kafka_bootstrap: str, data_dir: Path, tmp_path: Path, topic_prefix: str) -> None:
    for trusted, expected in (([], "127.0.0.1"), (["127.0.0.0/8"], "203.0.113.9")):
        body = b'{"n": "%s"}' % uuid.uuid4().hex.encode()
        with edge(kafka_bootstrap, data_dir / str(len(trusted)), tmp_path,
                  f"{topic_prefix}.events", trusted_proxies=trusted) as server:
            r = httpx.post(f"{server.url}/webhooks/hook", content=body,
                           headers={**signed(body), "X-Forwarded-For": "203.0.113.9"})
            assert r.status_code == 202
            [line] = server.wait_audit(lambda line: line["outcome"] == "accepted")
            assert line["remote_addr"] == expected


def test_a_clients_request_id_is_kept_beside_the_gateways_own(server: ThreadServer) -> None:
    body = b'{"n": "%s"}' % uuid.uuid4().hex.encode()
    r = httpx.post(f"{server.url}/webhooks/hook", content=body,
                   headers={**signed(body), "X-Request-Id": "client-chosen-1"})
    assert r.status_code == 202
    ours = r.headers["x-request-id"]
    assert ours != "client-chosen-1"
    [line] = server.wait_audit(lambda line: line["outcome"] == "accepted")
    assert (line["request_id"], line["client_request_id"]) == (ours, "client-chosen-1")


@pytest.mark.slow
def test_sigterm_with_a_stalled_request_stops_within_the_deadline_without_a_relay_restart(
        kafka_bootstrap: str, data_dir: Path, tmp_path: Path, topic_prefix: str) -> None:
    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.events")
    cfg["server"].update(shutdown_timeout_seconds=1, body_timeout_seconds=60)
    cfg["connectors"] = {"hook": {"type": "webhook", "config": {"secret": SECRET}}}
    gateway = GatewayProcess(write_config(tmp_path / "gateway.yaml", cfg), kafka_bootstrap)
    gateway.start()
    assert gateway.proc is not None
    port = gateway.port
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.sendall(b"POST /webhooks/hook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(0.5)
        started = time.monotonic()
        os.killpg(gateway.proc.pid, signal.SIGTERM)
        gateway.proc.wait(30)
        assert time.monotonic() - started < 8  # the deadline is 1 s; the relay stops too
    finally:
        sock.close()
        gateway.kill()
    log = gateway.log.read_text()
    assert "restarting" not in log
