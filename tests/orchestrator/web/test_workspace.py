"""The agent workspace (/app) in a real headless Chromium against a real orchestrator and the
session's Triton: sign in, the queue's live update, filters, the review queue, shortcuts, a
correction that reaches /v1/feedback, the streamed draft edited and sent, sign-out; axe-core
in every page. The session and CSRF rules are checked with plain HTTP beside it."""

import json
import os
import re
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from contracts.bands import BandThresholds, bands_file
from tests.utils.browser import chromium_or_skip, serious_violations
from tests.utils.orchestrator import ADMIN_KEY, Orchestrator, new_key, new_tenant, wait_until

# Thresholds for the test build's weak confidences (one epoch on 16 texts per intent): the
# card question scored 0.26, the nonsense 0.16 and the German ticket 0.13 (2026-12-01).
TEST_BANDS = BandThresholds(high_from=0.5, low_below=0.2)
CARD = {
    "subject": "My new card has not arrived",
    "body": "I ordered a new card two weeks ago and it has still not arrived. When will it come?",
}
NONSENSE = {"subject": "zqx vlorp", "body": "blorp quazzle mip vent zzzt frobnicate"}
GERMAN = {
    "subject": "Karte nicht angekommen",
    "body": "Meine neue Karte ist immer noch nicht angekommen. Das ist wirklich ärgerlich!",
}
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR", "var/screenshots"))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, triton_settings, triton):
    bands = Path(triton_settings.model_repository) / bands_file(1)
    existed = bands.exists()
    if not existed:
        TEST_BANDS.write(bands, {"note": "tests/orchestrator/web: test thresholds"})
    database = f"sqlite:///{tmp_path_factory.mktemp('web') / 'orchestrator.db'}"
    orchestrator = Orchestrator(
        database,
        triton_settings,
        ORCHESTRATOR_DRAFT_MAX_TOKENS="48",
        ORCHESTRATOR_WEB_EVENTS_POLL_S="0.25",
        ORCHESTRATOR_RATE_LIMIT_PER_MINUTE="6000",
        ORCHESTRATOR_RATE_LIMIT_BURST="200",
    ).start()
    try:
        tenant = new_tenant(orchestrator.client, "web-agents")["id"]
        key = new_key(orchestrator.client, ["tickets:read", "tickets:write"], tenant)
        yield orchestrator, key, tenant, database
    finally:
        orchestrator.close()
        if not existed:
            bands.unlink()


@pytest.fixture(scope="module")
def browser(workspace):
    driver = chromium_or_skip()
    yield driver
    driver.quit()


def _submit(client: httpx.Client, key: str, ticket: dict) -> int:
    created = client.post("/v1/tickets", json=ticket, headers={"X-API-Key": key})
    assert created.status_code == 202, created.text
    return created.json()["id"]


def _ticket(client: httpx.Client, key: str, ticket_id: int) -> dict:
    return client.get(f"/v1/tickets/{ticket_id}", headers={"X-API-Key": key}).json()


def _row_ids(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [
        r.get_attribute("data-id")
        for r in driver.find_elements(By.CSS_SELECTOR, "#rows tr[data-id]")
    ]


def _no_serious_violations(driver, page: str) -> None:
    found = serious_violations(driver)
    assert not found, f"axe-core on {page}: {json.dumps(found, indent=1)}"


def test_an_agent_works_the_queue_in_a_real_browser(workspace, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    orchestrator, key, *_ = workspace
    client, base = orchestrator.client, f"http://127.0.0.1:{orchestrator.port}"
    from selenium.common.exceptions import StaleElementReferenceException

    # a page being replaced leaves stale elements for a moment: look again
    wait = WebDriverWait(
        browser, 60, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    )

    # Sign in: a wrong key is refused on the form, the right one opens the queue
    browser.get(f"{base}/app")
    assert browser.current_url.endswith("/app/login"), "a page without a session asks to sign in"
    _no_serious_violations(browser, "the sign-in page")
    browser.find_element(By.ID, "api_key").send_keys("not-a-key")
    browser.find_element(By.CSS_SELECTOR, "form.signin button").click()
    wait.until(lambda d: "That key is not valid." in d.page_source)
    browser.find_element(By.ID, "api_key").send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "form.signin button").click()
    wait.until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Queue")
    assert "support_session" not in browser.execute_script("return document.cookie"), "HttpOnly"

    # The queue updates by itself when tickets arrive (no reload: the marker survives)
    wait.until(lambda d: d.find_element(By.ID, "rows").get_attribute("data-live") == "on")
    browser.execute_script("window.notReloaded = true")
    card = _submit(client, key, CARD)
    nonsense = _submit(client, key, NONSENSE)
    german = _submit(client, key, GERMAN)
    wait.until(lambda d: {str(card), str(nonsense), str(german)} <= set(_row_ids(d)))
    assert browser.execute_script("return window.notReloaded === true")
    wait_until(
        lambda: all(_ticket(client, key, t)["status"] == "done" for t in (card, nonsense, german)),
        120,
        what="the three tickets triaged and drafted",
    )
    wait.until(lambda d: "done" in d.find_element(By.CSS_SELECTOR, f'tr[data-id="{card}"]').text)
    _no_serious_violations(browser, "the queue")
    _screenshot(browser, "queue.png")

    # Filters: the language box and the sentiment list narrow the rows
    box = browser.find_element(By.ID, "filter-language")
    box.send_keys("de")
    box.submit()
    wait.until(lambda d: "language=de" in d.current_url)
    assert _row_ids(browser) == [str(german)]
    Select(browser.find_element(By.ID, "filter-sentiment")).select_by_value("very_positive")
    browser.find_element(By.CSS_SELECTOR, "form.filters button").click()
    wait.until(lambda d: "sentiment=very_positive" in d.current_url)
    assert _row_ids(browser) == []

    # The review queue holds the low-confidence ticket, not the clear one
    browser.find_element(By.LINK_TEXT, "Review queue").click()
    wait.until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Review queue")
    review = _row_ids(browser)
    assert str(nonsense) in review and str(card) not in review, (review, _bands(client, key))
    _no_serious_violations(browser, "the review queue")

    # Shortcuts: j selects the newest, j the next, r resolves it, k goes back, o opens
    browser.find_element(By.LINK_TEXT, "Queue").click()
    wait.until(lambda d: d.find_element(By.ID, "rows").get_attribute("data-live") == "on")

    def press(key: str) -> None:  # into whatever has the focus, as a person's keys go
        ActionChains(browser).send_keys(key).perform()

    press("j")
    press("j")
    selected = browser.find_element(By.CSS_SELECTOR, "#rows tr.selected").get_attribute("data-id")
    assert selected == str(nonsense)  # newest first: german, nonsense, card
    press("r")
    wait_until(
        lambda: _ticket(client, key, nonsense)["status"] == "resolved", 10, what="r resolved it"
    )
    wait.until(
        lambda d: "resolved" in d.find_element(By.CSS_SELECTOR, f'tr[data-id="{nonsense}"]').text
    )
    press("j")
    press("o")
    wait.until(lambda d: d.current_url.endswith(f"/app/tickets/{card}"))
    _no_serious_violations(browser, "a ticket's page")

    # A correction of the intent is a labelled example in /v1/feedback
    before = browser.find_element(By.ID, "intent").text
    corrected = "lost_or_stolen_card" if before != "lost_or_stolen_card" else "card_arrival"
    Select(browser.find_element(By.ID, "correct-intent")).select_by_value(corrected)
    browser.find_element(By.CSS_SELECTOR, ".correct button").click()
    wait.until(lambda d: "The correction is saved." in d.page_source)
    assert browser.find_element(By.ID, "intent").text == corrected
    feedback = client.get("/v1/feedback", headers={"X-API-Key": key}).json()["data"]
    assert {(f["ticket_id"], f["field"], f["old_value"], f["new_value"]) for f in feedback} >= {
        (card, "intent", before, corrected)
    }

    # Regenerate: the draft grows in the box as it is written, then is whole
    lengths = _watch_the_draft(browser, wait)
    streamed = [n for n in lengths[:-1] if 0 < n < lengths[-1]]
    assert len(set(streamed)) >= 2, f"the draft came in one piece: lengths {lengths}"
    assert "Draft written by llm" in browser.find_element(By.ID, "draft-status").text
    _screenshot(browser, "ticket.png")

    # Edit and send: the ticket is resolved with the agent's own text
    box = browser.find_element(By.ID, "reply")
    box.send_keys(Keys.END, "\n\nBest regards,\nSam from support")
    edited = box.get_attribute("value")
    browser.find_element(By.ID, "send").click()
    wait.until(lambda d: "The reply is sent and the ticket resolved." in d.page_source)
    sent = _ticket(client, key, card)
    assert sent["status"] == "resolved" and sent["reply"]["text"] == edited.strip()
    history = browser.find_element(By.CSS_SELECTOR, ".history").text
    for step in (
        "Received by api",
        "Triaged as",
        "Intent corrected",
        "Draft written again",
        "Reply sent",
        "Status set to resolved",
    ):
        assert step in history, (step, history)
    # the API tells the same story, oldest first
    told = client.get(f"/v1/tickets/{card}/history", headers={"X-API-Key": key}).json()["data"]
    assert [entry["what"] for entry in told] == [
        line.split(" ", 3)[3].split(" (key ")[0] for line in history.splitlines()[1:]
    ]
    assert told == sorted(told, key=lambda entry: entry["at"])

    # A ticket's page opened before the worker is done shows the triage once it is
    waiting = _submit(client, key, {"subject": "Refund", "body": "Where is my refund?"})
    wait_until(lambda: _ticket(client, key, waiting)["status"] == "done", 60, what="drafted")
    _set_status(workspace[3], waiting, "queued")  # as if it still waited for the worker
    browser.get(f"{base}/app/tickets/{waiting}")
    shown = "return document.querySelector('[data-ticket]')?.dataset"  # no element kept: reloads
    assert browser.execute_script(f"{shown}.status") == "queued"
    wait.until(lambda d: d.execute_script(f"{shown}.live") == "on")
    _set_status(workspace[3], waiting, "done")
    wait.until(lambda d: d.execute_script(f"{shown}.status") == "done")

    # Sign out: back on the sign-in form, and the queue asks to sign in again
    browser.find_element(By.CSS_SELECTOR, "header button").click()
    wait.until(lambda d: "You are signed out." in d.page_source)
    browser.get(f"{base}/app")
    assert browser.current_url.endswith("/app/login")


def _set_status(database: str, ticket_id: int, status: str) -> None:
    """The worker's own write of a ticket's status, made directly on the database."""
    from sqlalchemy import create_engine, update

    from orchestrator.db.models import Ticket, utcnow

    engine = create_engine(database)
    with engine.begin() as connection:
        connection.execute(
            update(Ticket).where(Ticket.id == ticket_id).values(status=status, updated_at=utcnow())
        )
    engine.dispose()


def _screenshot(browser, name: str) -> None:
    """The page from its top, for the README (SCREENSHOTS_DIR=docs/screenshots updates it)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.execute_script("window.scrollTo(0, 0); document.activeElement.blur()")
    browser.save_screenshot(str(SCREENSHOTS / name))


def _watch_the_draft(browser, wait) -> list[int]:
    """The draft box's length every few milliseconds from a click on Regenerate to the end."""
    from selenium.webdriver.common.by import By

    browser.find_element(By.ID, "regenerate").click()
    lengths, deadline = [], time.monotonic() + 90
    while time.monotonic() < deadline:
        length, busy = browser.execute_script(
            "const b = document.getElementById('reply');"
            "return [b.value.length, b.getAttribute('aria-busy') === 'true'];"
        )
        lengths.append(length)
        if not busy and length and len(lengths) > 1:
            return lengths
        time.sleep(0.02)
    raise AssertionError(f"the draft did not finish: lengths {lengths[-20:]}")


def _bands(client: httpx.Client, key: str) -> list:
    page = client.get("/v1/tickets", headers={"X-API-Key": key}).json()["data"]
    return [
        (t["id"], (t["triage"] or {}).get("confidence"), (t["triage"] or {}).get("confidence_band"))
        for t in page
    ]


# ---- the session and CSRF rules, over plain HTTP --------------------------------------------

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def _signed_in(base: str, key: str) -> tuple[httpx.Client, str]:
    """A client holding a session cookie, and the CSRF token its pages carry."""
    client = httpx.Client(base_url=base, timeout=30)
    form = client.get("/app/login")
    (login_token,) = CSRF_FIELD.findall(form.text)
    signed = client.post("/app/login", data={"api_key": key, "csrf_token": login_token})
    assert signed.status_code == 303 and signed.headers["location"] == "/app", signed.text
    cookie = signed.headers["set-cookie"].lower()
    for attribute in ("support_session=", "httponly", "samesite=strict", "path=/app"):
        assert attribute in cookie, cookie
    queue = client.get("/app")
    assert queue.status_code == 200
    assert queue.headers["content-security-policy"].startswith("default-src 'self'")
    return client, CSRF_FIELD.findall(queue.text)[0]


def test_without_a_session_pages_redirect_and_calls_get_401(workspace):
    orchestrator, *_ = workspace
    client = orchestrator.client
    page = client.get("/app", headers={"Accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"] == "/app/login"
    rows = client.get("/app/rows")
    assert rows.status_code == 401 and rows.json()["error"]["code"] == "not_signed_in"
    for token in ("x" * 43, "x" * 5000):  # made up, and longer than any token given out
        with httpx.Client(base_url=client.base_url, cookies={"support_session": token}) as forged:
            assert forged.get("/app/rows").status_code == 401


def test_writes_need_the_csrf_token_and_the_same_origin(workspace):
    orchestrator, key, *_ = workspace
    base = f"http://127.0.0.1:{orchestrator.port}"
    ticket = _submit(orchestrator.client, key, CARD)
    client, token = _signed_in(base, key)
    with closing(client):
        url = f"/app/tickets/{ticket}/status"
        for headers, data in (
            ({}, {"status": "resolved"}),
            ({"X-CSRF-Token": "wrong"}, {"status": "resolved"}),
            ({"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"}, {"status": "resolved"}),
            ({"X-CSRF-Token": token, "Origin": "https://evil.example"}, {"status": "resolved"}),
        ):
            refused = client.post(url, headers=headers, data=data)
            assert refused.status_code == 403, (headers, refused.text)
            assert refused.json()["error"]["code"] == "csrf_failed"
        assert _ticket(orchestrator.client, key, ticket)["status"] != "resolved"
        done = client.post(
            url, headers={"X-CSRF-Token": token, "Origin": base}, data={"status": "resolved"}
        )
        assert done.status_code == 204, done.text
        assert _ticket(orchestrator.client, key, ticket)["status"] == "resolved"
        form = client.post(url, data={"status": "closed", "csrf_token": token})
        assert form.status_code == 204, form.text
        not_agents = client.post(url, headers={"X-CSRF-Token": token}, data={"status": "queued"})
        assert not_agents.status_code == 422


def test_the_sign_in_form_needs_its_own_token_and_a_reader_key(workspace):
    orchestrator, _, tenant, _ = workspace
    base = f"http://127.0.0.1:{orchestrator.port}"
    with httpx.Client(base_url=base, timeout=30) as client:
        forged = client.post("/app/login", data={"api_key": "k", "csrf_token": "made-up"})
        assert forged.status_code == 403
        writer_only = new_key(orchestrator.client, ["chat"], tenant)
        (token,) = CSRF_FIELD.findall(client.get("/app/login").text)
        refused = client.post("/app/login", data={"api_key": writer_only, "csrf_token": token})
        assert refused.status_code == 403 and "tickets:read" in refused.text
        assert "support_session" not in refused.headers.get("set-cookie", "")


def test_sign_out_and_revocation_end_a_session_and_bad_input_gets_4xx(workspace):
    orchestrator, _, tenant, _ = workspace
    base = f"http://127.0.0.1:{orchestrator.port}"
    key_row = admin_key_of(orchestrator.client, tenant)
    client, token = _signed_in(base, key_row["key"])
    with closing(client):
        assert client.get("/app/tickets/99999999999999999999999").status_code == 422
        assert client.get("/app/tickets/999999").status_code == 404
        assert client.get("/app?band=everything").status_code == 422
        ticket = _submit(orchestrator.client, key_row["key"], CARD)
        too_long = {"reply": "x" * 20_001, "csrf_token": token}
        assert client.post(f"/app/tickets/{ticket}/reply", data=too_long).status_code == 422
        cookie = client.cookies["support_session"]
        out = client.post("/app/logout", data={"csrf_token": token})
        assert out.status_code == 303 and out.headers["location"].startswith("/app/login")
        with httpx.Client(base_url=base, cookies={"support_session": cookie}) as replay:
            replayed = replay.get("/app/rows")
        assert replayed.status_code == 401, "a signed-out cookie must not work again"
    client, _ = _signed_in(base, key_row["key"])
    with closing(client):
        revoked = orchestrator.client.delete(
            f"/v1/admin/keys/{key_row['id']}", headers={"X-API-Key": ADMIN_KEY}
        )
        assert revoked.status_code == 204
        assert client.get("/app/rows").status_code == 401, "a revoked key's session ends"


def admin_key_of(client: httpx.Client, tenant: int) -> dict:
    made = client.post(
        "/v1/admin/keys",
        json={"tenant_id": tenant, "scopes": ["tickets:read", "tickets:write"]},
        headers={"X-API-Key": ADMIN_KEY},
    )
    assert made.status_code == 201, made.text
    return made.json()
