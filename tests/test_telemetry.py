"""``telemetry.otlp_endpoint``: receive → durable → publish spans exported over OTLP/HTTP
to a real receiver (protobuf, decoded with opentelemetry-proto), in the sender's trace,
with the records' ``traceparent`` naming the gateway's span; and no SDK when it is off."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.helpers import ROOT, base_config, consume, thread_server, write_config

SECRET = "otel-github-secret"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SENDER_SPAN = "00f067aa0ba902b7"


class Collector:
    """An OTLP/HTTP trace receiver on a local port: every span it was sent."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.resources: list[dict[str, str]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource_spans in request.resource_spans:
                    collector.resources.append({a.key: a.value.string_value for a in
                                                resource_spans.resource.attributes})
                    for scope_spans in resource_spans.scope_spans:
                        collector.spans.extend(scope_spans.spans)
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, names: set[str], timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = {s.name.split(" ")[0]: s for s in self.spans}
            if names <= found.keys():
                return found
            time.sleep(0.1)
        raise AssertionError(f"spans seen: {[s.name for s in self.spans]}")


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.server.shutdown()


@pytest.mark.kafka
def test_receive_durable_and_publish_spans_continue_the_senders_trace(
        collector: Collector, kafka_bootstrap: str, data_dir: Path, topic_prefix: str,
        tmp_path: Path, pull_request_body: bytes) -> None:
    cfg = base_config(kafka_bootstrap, data_dir, f"{topic_prefix}.{{source}}",
                      telemetry={"otlp_endpoint": collector.url + "/"})
    cfg["connectors"] = {"github-main": {"type": "github", "config": {"secret": SECRET}}}
    body = pull_request_body
    mac = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    with thread_server(write_config(tmp_path / "gateway.yaml", cfg)) as server:
        r = httpx.post(f"{server.url}/webhooks/github-main", content=body, headers={
            "X-Hub-Signature-256": f"sha256={mac}", "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": str(uuid.uuid4()), "Content-Type": "application/json",
            "traceparent": f"00-{TRACE_ID}-{SENDER_SPAN}-01"})
        assert r.status_code == 202, r.text
        [record] = consume(kafka_bootstrap, f"{topic_prefix}.github", expect=1)
        spans = collector.wait({"POST", "durable", "publish"})

    receive, durable, publish = spans["POST"], spans["durable"], spans["publish"]
    assert receive.name == "POST /webhooks/{connector_id}"
    assert {s.trace_id.hex() for s in (receive, durable, publish)} == {TRACE_ID}
    assert receive.parent_span_id.hex() == SENDER_SPAN
    assert durable.parent_span_id == receive.span_id
    assert publish.parent_span_id == receive.span_id
    assert publish.name == f"publish {topic_prefix}.github"
    assert receive.start_time_unix_nano <= durable.start_time_unix_nano
    assert durable.end_time_unix_nano <= receive.end_time_unix_nano
    assert publish.end_time_unix_nano >= publish.start_time_unix_nano
    attributes = {a.key: a.value for a in receive.attributes}
    assert attributes["http.response.status_code"].int_value == 202
    assert attributes["gateway.connector_id"].string_value == "github-main"
    # the record names the gateway's span: a consumer continues from it
    assert dict(record.headers)["traceparent"] == (
        f"00-{TRACE_ID}-{receive.span_id.hex()}-01").encode()
    assert {"service.name": "event-gateway"}.items() <= collector.resources[0].items()


def test_without_an_endpoint_the_sdk_is_not_even_imported(tmp_path: Path) -> None:
    cfg = base_config("127.0.0.1:1", tmp_path / "data", "t.{source}")
    path = write_config(tmp_path / "gateway.yaml", cfg)
    script = (
        "import sys, asyncio\n"
        "from pathlib import Path\n"
        "from gateway.config import load_config\n"
        "from gateway.app import create_app\n"
        f"app = create_app(load_config(Path({str(path)!r})))\n"
        "async def main():\n"
        "    async with app.app.router.lifespan_context(app.app):\n"
        "        pass\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
