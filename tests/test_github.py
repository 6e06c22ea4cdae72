"""GitHub: the provider's own published example, then the connector's behaviour."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from connectors.github import GitHubConnector
from connectors.request import InboundRequest
from gateway.errors import SignatureError, Unnormalizable
from tests.helpers import settle


def req(body: bytes, **headers: str) -> InboundRequest:
    return InboundRequest("POST", "http://gw/webhooks/gh", {k.lower(): v for k, v in
                                                            headers.items()},
                          {}, body, "127.0.0.1", datetime.now(UTC))


def connector(*secrets: str, events: list[str] | None = None) -> GitHubConnector:
    cfg = GitHubConnector.Config.model_validate(
        {"secrets": list(secrets), **({"events": events} if events else {})})
    return GitHubConnector("gh", cfg)


# From GitHub's documentation, "Validating webhook deliveries" (testing the signature).
DOC_SECRET = "It's a Secret to Everybody"
DOC_BODY = b"Hello, World!"
DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_githubs_published_example_verifies() -> None:
    settle(connector(DOC_SECRET).verify(req(DOC_BODY, **{"X-Hub-Signature-256": DOC_SIGNATURE})))


def test_our_signer_reproduces_githubs_example() -> None:
    headers = GitHubConnector.scheme.sign(DOC_SECRET.encode(), DOC_BODY)
    assert headers["X-Hub-Signature-256"] == DOC_SIGNATURE


def test_rotation_any_listed_secret_verifies() -> None:
    settle(connector("old-secret", DOC_SECRET).verify(
        req(DOC_BODY, **{"X-Hub-Signature-256": DOC_SIGNATURE})))


@pytest.mark.parametrize(
    ("body", "header", "reason"),
    [
        (b"Hello, World?", DOC_SIGNATURE, "invalid_signature"),  # tampered body
        (DOC_BODY, DOC_SIGNATURE.replace("7571", "7570"), "invalid_signature"),
        (DOC_BODY, DOC_SIGNATURE.removeprefix("sha256="), "invalid_signature"),  # no prefix
        (DOC_BODY, "sha256=zzzz", "invalid_signature"),  # not hex
        (DOC_BODY, "sha1=" + "0" * 40, "invalid_signature"),  # other algorithm
        (DOC_BODY, None, "missing_signature"),
        (DOC_BODY, "", "missing_signature"),
    ],
)
def test_bad_signatures_are_rejected(body: bytes, header: str | None, reason: str) -> None:
    headers = {} if header is None else {"X-Hub-Signature-256": header}
    with pytest.raises(SignatureError) as err:
        settle(connector(DOC_SECRET).verify(req(body, **headers)))
    assert err.value.reason == reason
    assert DOC_SECRET not in str(err.value)


def test_wrong_secret_is_rejected() -> None:
    with pytest.raises(SignatureError):
        settle(connector("not-the-secret").verify(req(DOC_BODY, **{"X-Hub-Signature-256":
                                                            DOC_SIGNATURE})))


def test_type_id_and_time_from_a_pull_request(pull_request_body: bytes) -> None:
    c = connector("s")
    r = req(pull_request_body, **{"X-GitHub-Event": "pull_request",
                                  "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"})
    [draft] = c.normalize(r)
    assert draft.type == "pull_request.opened"
    assert draft.timestamp == datetime(2011, 1, 26, 19, 1, 12, tzinfo=UTC)
    assert c.delivery_id(r) == "72d3162e-cc78-11e3-81ab-4c9367dc0958"


def test_push_has_no_action() -> None:
    [draft] = connector("s").normalize(req(b'{"ref": "refs/heads/main"}',
                                           **{"X-GitHub-Event": "push"}))
    assert draft.type == "push"


def test_ping_is_a_handshake() -> None:
    reply = settle(connector("s").handshake(req(b"{}", **{"X-GitHub-Event": "ping"})))
    assert reply is not None
    assert reply.status == 200


def test_missing_event_header_cannot_be_normalized() -> None:
    with pytest.raises(Unnormalizable):
        connector("s").normalize(req(b"{}"))


def test_allow_list_matches_event_and_dotted_prefix() -> None:
    c = connector("s", events=["pull_request", "push"])
    assert c.allows("pull_request.opened")
    assert c.allows("push")
    assert not c.allows("issues.opened")
    assert not c.allows("pull_request_review.submitted")


def test_signature_is_hmac_sha256_of_raw_bytes() -> None:
    body = b'{"a": 1,  "b": [1,2]}'  # whitespace matters: raw bytes, not re-serialized JSON
    mac = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    settle(connector("k").verify(req(body, **{"X-Hub-Signature-256": "sha256=" + mac})))
