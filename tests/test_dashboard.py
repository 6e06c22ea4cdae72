"""The dashboard at the admin listener's ``/`` (issue 15, item 7), in a real headless
Chromium (Debian's, installed by ``scripts/install --tests``) driven by Playwright,
against ``gateway run``'s app on a real server and a real broker: sign in, see a delivery
the test just sent, open it, replay it from the page and find it on Kafka again. A
screenshot is kept in ``var/test-artifacts/`` (``GATEWAY_TEST_ARTIFACTS``)."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from devtools.localkafka import free_port
from gateway.dashboard import COOKIE, session_value
from tests.helpers import base_config, consume, github_headers, thread_server, write_config

pytestmark = pytest.mark.kafka
TOKEN = "dashboard-admin-token-5c4b3a29"
SECRET = "dashboard-gh-secret-value-77"
ARTIFACTS = Path(os.environ.get("GATEWAY_TEST_ARTIFACTS", "var/test-artifacts"))


def chromium() -> str:
    found = os.environ.get("GATEWAY_CHROMIUM") or shutil.which("chromium")
    if found is None:
        pytest.fail("no chromium: `bash scripts/install --tests` installs Debian's")
    return found


def gateway(tmp_path: Path, bootstrap: str, prefix: str) -> tuple[Path, str]:
    port = free_port()
    cfg = base_config(bootstrap, tmp_path / "data", f"{prefix}.{{source}}",
                      admin={"port": port, "token": TOKEN})
    cfg["kafka"]["dead_letter_topic"] = f"{prefix}.dlq"
    cfg["connectors"] = {"dash-gh": {"type": "github", "config": {"secret": SECRET},
                                     "acl": {"event_types": ["push"]}}}
    return write_config(tmp_path / "g.yaml", cfg), f"http://127.0.0.1:{port}"


def test_the_dashboard_shows_a_delivery_and_replays_it_from_the_page(
        kafka_bootstrap: str, tmp_path: Path, topic_prefix: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    path, admin = gateway(tmp_path, kafka_bootstrap, topic_prefix)
    marker = uuid.uuid4().hex
    # markup in a body is shown as text, never run or rendered
    body = orjson.dumps({"ref": "refs/heads/main", "marker": marker,
                         "note": "<img src=x onerror=\"document.title='owned'\">"})
    with thread_server(path) as server:
        sent = httpx.post(f"{server.url}/webhooks/dash-gh", content=body,
                          headers=github_headers(body, SECRET, event="push"))
        assert sent.status_code == 202
        rid, [event_id] = sent.headers["x-request-id"], sent.json()["event_ids"]
        forged = httpx.post(f"{server.url}/webhooks/dash-gh", content=body,
                            headers=github_headers(body, "wrong", event="push"))
        assert forged.status_code == 401
        dead = httpx.post(f"{server.url}/webhooks/dash-gh", content=b'{"action": "x"}',
                          headers=github_headers(b'{"action": "x"}', SECRET, event="issues"))
        assert dead.json()["dead_lettered"] is True
        consume(kafka_bootstrap, f"{topic_prefix}.github", expect=1)  # published once

        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            try:
                page.goto(admin + "/")
                page.fill("#token", "not-the-token")
                page.click("button[type=submit]")
                expect(page.locator(".message")).to_have_text("That is not the admin token.")
                errors.clear()  # the browser logs the 401 of that wrong token
                page.fill("#token", TOKEN)
                page.click("button[type=submit]")

                # the connector, with its rate and last error; the delivery just sent
                row = page.locator("[data-testid=connectors] tr[data-connector='dash-gh']")
                expect(row).to_contain_text("github (webhook)")
                expect(row).to_contain_text("33%")  # 1 of 3 requests in the window
                expect(row).to_contain_text("forbidden")  # its last error: the dead letter
                expect(page.locator("[data-testid=kafka]")).to_contain_text("Kafka up")
                mine = page.locator(f"#deliveries tr[data-request-id='{rid}']")
                expect(mine).to_contain_text("accepted")
                expect(page.locator(f"#dead tr[data-request-id="
                                    f"'{dead.headers['x-request-id']}']")).to_be_visible()

                # its detail: the path to its offset on Kafka, and the body as text
                mine.click()
                expect(page.locator("#journey")).to_contain_text(
                    f"published {event_id} → {topic_prefix}.github")
                expect(page.locator("#body")).to_contain_text("<img src=x onerror=")
                assert page.locator("#body img").count() == 0
                expect(page.locator("#headers")).to_contain_text(
                    "x-hub-signature-256: [redacted]")

                # a replay started from the page publishes the event again, same id
                page.click("#replay")
                expect(page.locator("[data-testid=notice]")).to_contain_text(
                    "1 delivery(ies), 1 event(s) published again")

                # filters: the rejected one by its reason
                page.select_option("select[name=outcome]", "rejected")
                page.click("#filters button[type=submit]")
                expect(page.locator(f"#deliveries tr[data-request-id='{rid}']")).to_have_count(0)
                expect(page.locator("#deliveries tr").first).to_contain_text("invalid_signature")

                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
                assert page.title() == "event-gateway"
            finally:
                browser.close()
        assert errors == []
        # (Kafka is read once Playwright's own event loop has closed)
        ids = [orjson.loads(r.value)["id"]
               for r in consume(kafka_bootstrap, f"{topic_prefix}.github", expect=2)]
        assert ids == [event_id, event_id]


def test_the_session_is_a_cookie_that_is_not_the_token_and_stays_on_its_origin(
        kafka_bootstrap: str, tmp_path: Path, topic_prefix: str) -> None:
    path, admin = gateway(tmp_path, kafka_bootstrap, topic_prefix)
    with thread_server(path):
        page = httpx.get(f"{admin}/")
        assert "Admin token" in page.text  # not signed in: the login form
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert httpx.get(f"{admin}/admin/overview", cookies={COOKIE: TOKEN}).status_code == 401

        signed = httpx.post(f"{admin}/login", data={"token": TOKEN})
        assert signed.status_code == 303
        cookie = signed.cookies[COOKIE]
        assert cookie == session_value(TOKEN)
        assert TOKEN not in cookie
        assert "httponly" in signed.headers["set-cookie"].lower()
        assert "samesite=strict" in signed.headers["set-cookie"].lower()
        with httpx.Client(base_url=admin, cookies={COOKIE: cookie}) as browser:
            overview: dict[str, Any] = browser.get("/admin/overview").json()
            assert [c["id"] for c in overview["connectors"]] == ["dash-gh"]
            assert overview["kafka"]["ok"] in (True, False)
            assert "<script src=\"/static/app.js\"" in browser.get("/").text
            # a change needs the dashboard's own origin: another site's form is refused
            hostile = browser.post("/admin/connectors/dash-gh/pause",
                                   headers={"origin": "https://evil.example"})
            assert hostile.status_code == 401
            assert browser.post("/admin/connectors/dash-gh/pause",
                                headers={"origin": admin}).json() == {"paused": ["dash-gh"]}
        assert httpx.get(f"{admin}/static/../admin.py").status_code == 404
        started = time.monotonic()
        assert httpx.post(f"{admin}/login", data={"token": "guess"}).status_code == 401
        assert time.monotonic() - started >= 0.5  # guesses are slowed down
