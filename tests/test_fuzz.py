"""Fuzzing with hypothesis: every connector's hooks, and the gateway's HTTP edge.

1. Every registered webhook connector type (``tests/connector_cases.py`` holds a config
   for each; a type without one fails ``test_every_registered_type_has_a_case``) gets
   generated requests: garbage in its own signature and timestamp headers, random bytes,
   JSON (deep, wide, huge numbers, hostile strings), non-UTF-8, forms; and requests
   signed correctly over generated bodies, so that ``normalize`` sees garbage too. Its
   hooks are called as ``Pipeline.webhook`` calls them; an exception the pipeline does not
   catch at that step (it would be a 500) fails the test.
2. The gateway on a real uvicorn server, with a dozen connector types: generated paths,
   methods, headers and bodies, signed or not. No answer may be 5xx; afterwards every
   audit line parses as JSON and the logs hold no ``unhandled_error`` or traceback.

The suite runs a bounded, derandomized number of examples (``gateway-suite`` profile);
``scripts/fuzz`` sets ``GATEWAY_FUZZ_EXAMPLES`` to run many, randomly.
Regressions found by fuzzing are kept as ``@example``s.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import string
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from connectors.base import Connector, PushSource, Webhook
from connectors.presets import PresetConnector
from connectors.presets.handshakes import OKTA, TWITCH
from connectors.registry import available
from connectors.request import HandshakeReply, InboundRequest, event_id
from gateway.errors import PayloadTooLarge, Rejected, Unavailable, Unnormalizable
from gateway.kafka_settings import KafkaConfig
from gateway.records import Records
from tests.connector_cases import CASES, HEADERS, PUBLIC_URL, build, build_any, build_sender
from tests.helpers import base_config, thread_server, write_config
from tests.signing_support import keep_local, sign_detached, with_proof
from tests.test_aws_sns import CERT_URL, CertServer, Fake

EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES") or 0)  # set by scripts/fuzz
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
          HealthCheck.large_base_example]
settings.register_profile("gateway-suite", deadline=None, derandomize=True, database=None,
                          suppress_health_check=_QUIET, print_blob=True)
settings.register_profile("gateway-fuzz", deadline=None, database=None,
                          suppress_health_check=_QUIET, print_blob=True)
PROFILE = settings.get_profile("gateway-fuzz" if EXAMPLES else "gateway-suite")
PER_CONNECTOR = EXAMPLES or 25  # examples per connector type
OVER_HTTP = EXAMPLES or 250  # requests to the real server

WEBHOOK_TYPES = sorted(name for name, cls in available().items() if cls.kind == "webhook")
# Verified with keys only the provider serves (fetched from its hosts): the fuzz cannot
# sign for them, so none of their generated deliveries is authentic.
UNSIGNABLE = {"google_pubsub", "plaid", "paypal"}


def test_every_registered_type_has_a_case() -> None:
    missing = sorted(set(available()) - set(CASES))
    assert not missing, f"add a minimal config for {missing} to tests/connector_cases.py"
    assert not set(CASES) - set(available()), "tests/connector_cases.py names unknown types"
    for name in CASES:
        assert build_any(name).connector_id


# -- what to generate --------------------------------------------------------------------

NOW = int(time.time())
HOSTILE = [
    "", " ", "0", "-1", "+1", "nan", "NaN", "inf", "-inf", "Infinity", "1e309", "1.5", "0x10",
    "1_700_000_000", "\xb2", "\xb9\xb2\xb3", "\u0661\u0667\u0660\u0660", "\uff11\uff17",
    "9" * 21, "9" * 400, "9" * 4300, "9" * 5000, str(NOW), str(NOW * 1000), f" {NOW}",
    f"{NOW}\n", f"{NOW}\x00", "2026-01-01T00:00:00Z", "2026-W01-1", "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00", "\x00", "\r\n", "é" * 40, "\u202e", "[",
    "{}", "null", "true", "v1,", "v1=", "sha256=", "t=,v1=", "t=1,v1=zz", "=" * 64,
    "ab" * 64, "A" * 88, "webhook_callback_verification", "url_verification", "ping", "push",
    "application/json", "application/x-www-form-urlencoded", "text/plain", "Bearer x",
    "Basic eDp4", "1", "2", "Notification", "SubscriptionConfirmation",
    "UnsubscribeConfirmation", "endpoint.url_validation", CERT_URL,
    CERT_URL + "?x=1", "https://[sns.us-east-2.amazonaws.com/x.pem",
    "https://sns.us-east-2.amazonaws.com/other.pem", "https://sns.x.amazonaws.com:8443/a.pem",
]
KEYS = [
    "type", "id", "event", "event_id", "eventId", "action", "created_at", "createdAt",
    "timestamp", "webhookTimestamp", "time", "occurredAt", "signature", "token", "event-data",
    "value", "clientState", "changeType", "lifecycleEvent", "notificationItems",
    "NotificationRequestItem", "additionalData", "hmacSignature", "eventCode", "amount",
    "currency", "success", "pspReference", "eventDate", "Type", "Message", "MessageId",
    "Signature", "SigningCertURL", "SignatureVersion", "SubscribeURL", "Timestamp",
    "TopicArn", "Subject", "MessageAttributes", "trigger", "challenge", "payload",
    "plainToken", "data", "object", "subscriptionType", "events", "eventType", "version",
    "head_commit", "ref", "entry", "0", "kind", "_id", "date", "messageId", "topic",
]

text_values = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40),
                        st.integers().map(str), st.binary(max_size=48).map(
                            lambda b: base64.b64encode(b).decode()))
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False), text_values,
    st.text(st.characters(exclude_categories=["Cs"]), max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)),
                                            inner, max_size=6)),
    max_leaves=12)
json_objects = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5)


def _nested(depth: int, kind: int) -> bytes:
    if kind == 0:
        return b"[" * depth + b"]" * depth
    if kind == 1:
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b'{"type":' * depth + b'"x"' + b"}" * depth


bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(orjson.dumps),
    json_objects.map(orjson.dumps),
    st.builds(_nested, st.integers(1, 3000), st.integers(0, 2)),
    st.builds(lambda key, n: b'{"%s": %s}' % (key.encode(), b"9" * n),
              st.sampled_from(KEYS), st.integers(19, 5000)),  # past 64 bits, past 4300 digits
    st.binary(max_size=64).map(lambda b: b"\xff\xfe\x80" + b),  # not UTF-8
    st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=5).map(
        lambda d: urlencode(d).encode()),
    st.sampled_from([b"", b"null", b"[]", b"{}", b'"x"', b"1e309", b"-0", b"\xef\xbb\xbf{}"]),
)


def header_names(type_name: str, c: Connector[Any]) -> list[str]:
    """The headers ``c`` reads: its signature, timestamp, id, type and handshake headers."""
    names = list(HEADERS.get(type_name, ()))
    if isinstance(c, PresetConnector):
        p, s = c.preset, c.preset.scheme
        names += [n for n in (s.header, getattr(s, "timestamp_header", None),
                              getattr(s, "delivery_id_header", None), p.type_header,
                              p.id_header) if n]
        if p.handshake is TWITCH:
            names.append("Twitch-Eventsub-Message-Type")
        if p.challenge is OKTA:
            names.append("X-Okta-Verification-Challenge")
    return [*names, "Content-Type", "Authorization"]


# -- signing what was generated, the way each provider does ------------------------------

def _signed_time_pointer(c: Connector[Any]) -> str | None:
    """The body key holding the signed timestamp, for presets that keep it there."""
    scheme = c.preset.scheme if isinstance(c, PresetConnector) else None
    pointer = getattr(scheme, "timestamp_pointer", None)
    return pointer.lstrip("/") if pointer else None


@st.composite
def requests(draw: st.DrawFn, type_name: str, c: Webhook[Any], sns: Fake) -> InboundRequest:
    names = header_names(type_name, c)
    body = draw(bodies)
    signed: dict[str, str] = {}
    # garbage | signed over what was generated | signed, then a checked header spoiled
    mode = draw(st.sampled_from(["garbage", "signed", "signed", "spoiled"]))
    if mode != "garbage":
        value = draw(st.one_of(json_objects, json_values))
        # mostly the good certificate: a run must also get authentic SNS deliveries
        cert_url = draw(st.sampled_from([CERT_URL, CERT_URL, CERT_URL,
                                         CERT_URL.replace("abc", "other"),
                                         CERT_URL + "#x", "https://[sns/x.pem"]))
        stamp = None if mode == "signed" else draw(st.one_of(st.none(),
                                                             st.sampled_from(HOSTILE)))
        pointer = _signed_time_pointer(c)
        if pointer:  # Linear: the signed timestamp is in the body
            value = value if isinstance(value, dict) else {"data": value}
            value[pointer] = int(time.time() * 1000) if stamp is None else stamp
        inside = with_proof(type_name, value, sns, cert_url, stamp)
        if inside is not None:
            body = inside
        elif mode == "signed" or draw(st.booleans()):
            body = orjson.dumps(value)
        signed = sign_detached(type_name, c, body)
    garbage = draw(st.dictionaries(st.one_of(st.sampled_from(names), st.text(
        string.ascii_letters + "-", min_size=1, max_size=12)), text_values, max_size=4))
    headers = {**signed, **garbage} if mode == "spoiled" else {**garbage, **signed}
    if mode == "spoiled" or (mode == "garbage" and draw(st.booleans())):
        spoiled = draw(st.sampled_from(sorted(signed) or names))
        headers[spoiled] = draw(st.one_of(st.sampled_from(HOSTILE), st.sampled_from(HOSTILE),
                                          text_values))
    query = draw(st.dictionaries(st.sampled_from(
        ["validationToken", "hub.mode", "hub.verify_token", "hub.challenge", "challenge",
         "bodySHA256", "x"]), text_values, max_size=3))
    url = PUBLIC_URL + ("?" + urlencode(query) if query else "")
    method = "POST" if mode == "signed" else draw(st.sampled_from(
        ["POST", "POST", "POST", "GET", "OPTIONS"]))
    return InboundRequest(method, url,
                          {k.lower(): v for k, v in headers.items()}, query, body,
                          "127.0.0.1", datetime.now(UTC))


# -- the hooks, called as Pipeline.webhook calls them ------------------------------------

RECORDS = Records(KafkaConfig())


def _check_reply(reply: HandshakeReply) -> None:
    assert isinstance(reply.status, int)
    assert isinstance(reply.body, bytes)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in reply.headers.items())


async def drive(c: Webhook[Any], request: InboundRequest) -> str:
    """What happened; raises what the pipeline would not catch (a 500)."""
    try:
        early = c.challenge(request)
        if early is not None:
            _check_reply(early)
            return "challenge"
        if request.method not in getattr(c, "methods", {"POST"}):
            return "method_not_allowed"
        await c.verify(request)
        reply = await c.handshake(request)
    except (Rejected, Unavailable):
        return "refused"
    if reply is not None:
        _check_reply(reply)
        return "handshake"
    delivery = c.delivery_id(request)
    assert isinstance(delivery, str)
    replay = getattr(c, "replay_key", lambda _: None)(request)
    assert replay is None or isinstance(replay, str)
    try:
        for i, draft in enumerate(c.normalize(request)):
            assert isinstance(draft.type, str)
            assert isinstance(draft.payload, dict)
            if c.allows(draft.type):
                RECORDS.build(c, event_id(c.connector_id, delivery, i), source=c.source_slug,
                              type=draft.type, timestamp=draft.timestamp or request.received_at,
                              received_at=request.received_at, payload=draft.payload,
                              raw=draft.raw, key=draft.key)
    except (PayloadTooLarge, Unnormalizable):
        return "dead_lettered"
    return "accepted"


@pytest.mark.parametrize("type_name", WEBHOOK_TYPES)
def test_connector_hooks_raise_only_what_the_pipeline_answers(
        type_name: str, sns: tuple[Fake, CertServer], runner: asyncio.Runner) -> None:
    fake, server = sns
    c = build(type_name)
    keep_local(c, server)
    outcomes: set[str] = set()

    @settings(PROFILE, max_examples=PER_CONNECTOR)
    @given(request=requests(type_name, c, fake))
    def fuzz(request: InboundRequest) -> None:
        outcomes.add(runner.run(drive(c, request)))

    try:
        fuzz()
    finally:
        runner.run(c.aclose())
    assert "refused" in outcomes
    assert type_name in UNSIGNABLE or outcomes & {"accepted", "dead_lettered", "handshake"}, (
        f"no generated {type_name} delivery got past authentication: {outcomes}")


# -- regressions the fuzzer found, kept as examples --------------------------------------

def _request(headers: dict[str, str], body: bytes, method: str = "POST") -> InboundRequest:
    return InboundRequest(method, PUBLIC_URL, {k.lower(): v for k, v in headers.items()}, {},
                          body, "127.0.0.1", datetime.now(UTC))


@given(type_name=st.just("discord"), headers=st.just(
    {"X-Signature-Ed25519": "00" * 64, "X-Signature-Timestamp": "\xb2"}), body=st.just(b"{}"),
       sign=st.just(False))
@example(type_name="discord", headers={"X-Signature-Ed25519": "00",
                                       "X-Signature-Timestamp": "9" * 5000},
         body=b"{}", sign=False)
@example(type_name="sendgrid", headers={"X-Twilio-Email-Event-Webhook-Signature": "AA==",
                                        "X-Twilio-Email-Event-Webhook-Timestamp": "9" * 400},
         body=b"[]", sign=False)
@example(type_name="mailgun", headers={}, sign=False, body=(
    b'{"signature": {"timestamp": "\\u00b2", "token": "t", "signature": "s"}}'))
@example(type_name="aws_sns", headers={}, sign=False, body=orjson.dumps({
    "Type": "Notification", "Signature": "AA==",
    "SigningCertURL": "https://[sns.us-east-2.amazonaws.com/x.pem"}))
@example(type_name="twitch", headers={"Twitch-Eventsub-Message-Type":
                                      "webhook_callback_verification"},
         body=b"\xff not json", sign=True)
@example(type_name="twitch", headers={"Twitch-Eventsub-Message-Type":
                                      "webhook_callback_verification"},
         body=b"[1, 2]", sign=True)
@settings(PROFILE, max_examples=1)
def test_regressions(type_name: str, headers: dict[str, str], body: bytes,
                     sign: bool) -> None:
    """Unsigned ones are refused (401), not a 500; signed ones reach normalize and are
    dead-lettered (an authentic Twitch verification whose body is not an object made
    ``respond`` raise Unnormalizable, which the pipeline does not catch there)."""
    c = build(type_name)
    signed = sign_detached(type_name, c, body) if sign else {}
    outcome = asyncio.run(drive(c, _request({**signed, **headers}, body)))
    assert outcome == ("dead_lettered" if sign else "refused")


# -- the HTTP edge: a real server, generated requests -------------------------------------

OVER_HTTP_TYPES = ["github", "webhook", "stripe", "slack", "standard_webhooks", "linear",
                   "hubspot", "twitch", "zendesk", "sanity", "meta_whatsapp", "okta",
                   "gitlab", "discord", "sendgrid", "mailgun", "adyen", "box", "twilio",
                   "microsoft_graph", "aws_sns", "push", "telnyx", "netlify", "vonage",
                   "azure_event_grid", "teams_outgoing", "plaid"]
HEADER_BYTES = bytes(b for b in range(0x21, 0x100) if b != 0x7F)
header_bytes = st.one_of(
    st.sampled_from(HOSTILE).map(lambda s: s.strip(" \t\r\n\x00").encode("utf-8")),
    st.binary(max_size=40).map(lambda b: bytes(HEADER_BYTES[x % len(HEADER_BYTES)]
                                               for x in b)),
    st.integers().map(lambda i: str(i).encode()))
path_segments = st.one_of(st.sampled_from(OVER_HTTP_TYPES),
                          st.text(max_size=30).map(lambda t: quote(t, safe="")),
                          st.sampled_from(["", ".", "..", "%00", "a/b", "github/", " ",
                                           "x" * 300, "_unknown"]))


api_events = st.fixed_dictionaries({}, optional={
    "source": json_values, "type": json_values, "payload": json_values, "id": json_values,
    "timestamp": st.one_of(json_values, st.sampled_from(
        ["2026-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])),
    "extra": json_values})


@st.composite
def http_requests(draw: st.DrawFn, signers: dict[str, Webhook[Any] | PushSource[Any]], fake: Fake
                  ) -> tuple[str, str, dict[str, bytes], bytes]:
    kind = draw(st.sampled_from(["signed", "signed", "configured", "configured", "unknown",
                                 "api", "other"]))
    segment = draw(st.sampled_from(OVER_HTTP_TYPES) if kind in ("signed", "configured")
                   else path_segments)
    path = {"api": "/api/events", "other": draw(st.sampled_from(
        ["/", "/healthz", "/readyz", "/metrics", "/webhooks", "/webhooks/", "/api",
         "/" + segment, f"/webhooks/{segment}/x"]))}.get(kind, "/webhooks/" + segment)
    method = draw(st.sampled_from(["POST", "POST", "POST", "POST", "GET", "PUT", "DELETE"]))
    body = draw(bodies)
    headers: dict[str, bytes] = {}
    if kind == "api" and draw(st.booleans()):  # as a push connector, events of any shape
        body = draw(st.one_of(api_events.map(orjson.dumps),
                              st.lists(api_events, max_size=3).map(orjson.dumps), bodies))
        headers = {k: v.encode() for k, v in signers["push"].sign(body).items()}
    if draw(st.integers(0, 30)) == 0:
        body = b"x" * 70_000  # past server.max_body_bytes
    if kind == "signed":
        value = draw(st.one_of(json_objects, json_values))
        inside = with_proof(segment, value, fake)
        body = inside if inside is not None else orjson.dumps(value)
        headers = {k: v.encode() for k, v in
                   sign_detached(segment, signers[segment], body).items()}
    names = [*header_names(segment, signers[segment])] if segment in signers else []
    names += ["Content-Type", "Authorization", "X-Request-Id", "webhook-signature"]
    for name, value in draw(st.dictionaries(
            st.one_of(st.sampled_from(names), st.text(string.ascii_letters + "-", min_size=1,
                                                      max_size=12)),
            header_bytes, max_size=4)).items():
        if name.lower() not in ("content-length", "transfer-encoding", "host", "connection",
                                "expect", "upgrade", "te"):
            headers[name] = value
    return method, path, headers, body


@pytest.mark.kafka
def test_the_http_edge_never_answers_5xx(
        kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory,
        sns: tuple[Fake, CertServer]) -> None:
    fake, cert_server = sns
    tmp = tmp_path_factory.mktemp("fuzz-edge")
    data_dir = tmp / "data"
    data_dir.mkdir()
    cfg = base_config(kafka_bootstrap, data_dir, f"fuzz{NOW}.{{source}}")
    cfg["connectors"] = {name: {"type": name, "config": CASES[name]} for name in OVER_HTTP_TYPES}
    signers = {name: build_sender(name, name) for name in OVER_HTTP_TYPES}
    seen: dict[int, int] = {}
    library = _LibraryLogs()
    logging.getLogger().addHandler(library)
    try:
        with capture_logs() as logs, \
                thread_server(write_config(tmp / "gateway.yaml", cfg)) as server, \
                httpx.Client(base_url=server.url, timeout=30) as client:
            runtime = server.gateway.state.runtime
            for connector in runtime.pipeline.webhooks.values():
                keep_local(connector, cert_server)

            @settings(PROFILE, max_examples=OVER_HTTP)
            @given(call=http_requests(signers, fake))
            @example(call=("POST", "/webhooks/discord",
                           {"X-Signature-Timestamp": b"\xb2", "X-Signature-Ed25519": b"00"},
                           b"{}"))
            @example(call=("POST", "/webhooks/sendgrid",
                           {"X-Twilio-Email-Event-Webhook-Timestamp": b"9" * 5000,
                            "X-Twilio-Email-Event-Webhook-Signature": b"AA=="}, b"[]"))
            @example(call=("POST", "/webhooks/aws_sns", {}, orjson.dumps(fake.message(
                SigningCertURL="https://[sns.us-east-2.amazonaws.com/x.pem"))))
            def fuzz(call: tuple[str, str, dict[str, bytes], bytes]) -> None:
                method, path, headers, body = call
                r = client.request(method, path, content=body,
                                   headers={k.encode("ascii"): v for k, v in headers.items()})
                seen[r.status_code] = seen.get(r.status_code, 0) + 1
                assert r.status_code < 500, (method, path, r.status_code, r.text[:200])

            fuzz()
    finally:
        logging.getLogger().removeHandler(library)

    print(f"HTTP answers by status: {dict(sorted(seen.items()))}")
    assert seen.get(401), seen
    assert seen.get(404), seen
    failures = [e for e in logs if e.get("event") == "unhandled_error" or "exc_info" in e
                or e.get("log_level") == "critical"]
    assert not failures, failures[:3]
    assert not library.problems, library.problems[:3]
    audit = [p for p in data_dir.glob("audit.jsonl*") if not p.name.endswith(".lock")]
    lines = [line for p in audit for line in p.read_bytes().splitlines()]
    assert len(lines) >= seen[401]  # every refusal at least is audited
    for line in lines:
        orjson.loads(line)  # whole lines only: nothing half-written


class _LibraryLogs(logging.Handler):
    """Records from the standard library's loggers that carry a traceback, and uvicorn's
    errors ("Exception in ASGI application" comes this way). aiokafka's complaints about
    topics being created are not the HTTP edge's business."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or (record.name.startswith("uvicorn")
                               and record.levelno >= logging.ERROR):
            self.problems.append(f"{record.name}: {record.getMessage()}")
