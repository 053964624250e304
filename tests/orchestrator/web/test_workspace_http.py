"""The workspace's session and CSRF rules over plain HTTP, in process on SQLite and PostgreSQL
(no Triton: no call here reaches a model). The pages themselves: test_workspace.py."""

import pytest

from tests.utils.feedback import app_without_triton
from tests.utils.orchestrator import ADMIN_KEY, new_key, new_tenant
from tests.utils.workspace import CSRF_FIELD, sign_in

ADMIN = {"X-API-Key": ADMIN_KEY}
TICKET = {"subject": "Card", "body": "My new card has not arrived."}
BASE = "http://testserver"  # the TestClient's own origin


@pytest.fixture(scope="module")
def app(database_url):
    with app_without_triton(database_url) as client:
        yield client, new_tenant(client, "web agents")["id"]


@pytest.fixture
def client(app):
    client, _ = app
    client.cookies.clear()  # each test signs in afresh
    return client


@pytest.fixture
def agent(app) -> dict:
    client, tenant = app
    made = client.post(
        "/v1/admin/keys",
        json={"tenant_id": tenant, "scopes": ["tickets:read", "tickets:write"]},
        headers=ADMIN,
    )
    assert made.status_code == 201, made.text
    return made.json()


def _ticket(client, key: str) -> int:
    created = client.post("/v1/tickets", json=TICKET, headers={"X-API-Key": key})
    assert created.status_code == 202, created.text
    return created.json()["id"]


def _status(client, key: str, ticket_id: int) -> str:
    return client.get(f"/v1/tickets/{ticket_id}", headers={"X-API-Key": key}).json()["status"]


def test_without_a_session_pages_redirect_and_calls_get_401(client):
    page = client.get("/app", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/app/login"
    rows = client.get("/app/rows")
    assert rows.status_code == 401 and rows.json()["error"]["code"] == "not_signed_in"
    for token in ("x" * 43, "x" * 5000):  # made up, and longer than any token given out
        forged = client.get("/app/rows", headers={"Cookie": f"support_session={token}"})
        assert forged.status_code == 401


def test_writes_need_the_csrf_token_and_the_same_origin(client, agent):
    ticket = _ticket(client, agent["key"])
    token = sign_in(client, agent["key"])
    url, resolve = f"/app/tickets/{ticket}/status", {"status": "resolved"}
    for headers in (
        {},
        {"X-CSRF-Token": "wrong"},
        {"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"},
        {"X-CSRF-Token": token, "Sec-Fetch-Site": "same-site"},
        {"X-CSRF-Token": token, "Origin": "https://evil.example"},
    ):
        refused = client.post(url, headers=headers, data=resolve)
        assert refused.status_code == 403, (headers, refused.text)
        assert refused.json()["error"]["code"] == "csrf_failed"
    assert _status(client, agent["key"], ticket) == "queued"
    done = client.post(url, headers={"X-CSRF-Token": token, "Origin": BASE}, data=resolve)
    assert done.status_code == 204, done.text
    assert _status(client, agent["key"], ticket) == "resolved"
    form = client.post(url, data={"status": "closed", "csrf_token": token})  # a plain form
    assert form.status_code == 204, form.text
    not_agents = client.post(url, headers={"X-CSRF-Token": token}, data={"status": "queued"})
    assert not_agents.status_code == 422


def test_the_sign_in_form_needs_its_own_token_and_a_reader_key(client, app):
    forged = client.post("/app/login", data={"api_key": "k", "csrf_token": "made-up"})
    assert forged.status_code == 403
    (token,) = CSRF_FIELD.findall(client.get("/app/login").text)
    wrong = client.post("/app/login", data={"api_key": "sk-not-a-key", "csrf_token": token})
    assert wrong.status_code == 401 and "That key is not valid." in wrong.text
    chat_only = new_key(client, ["chat"], app[1])
    refused = client.post("/app/login", data={"api_key": chat_only, "csrf_token": token})
    assert refused.status_code == 403 and "tickets:read" in refused.text
    assert "support_session" not in refused.headers.get("set-cookie", "")


def test_sign_out_and_revocation_end_a_session(client, agent):
    token = sign_in(client, agent["key"])
    cookie = client.cookies["support_session"]
    out = client.post("/app/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"].startswith("/app/login")
    client.cookies.clear()
    replayed = client.get("/app/rows", headers={"Cookie": f"support_session={cookie}"})
    assert replayed.status_code == 401, "a signed-out cookie must not work again"
    sign_in(client, agent["key"])
    assert client.delete(f"/v1/admin/keys/{agent['id']}", headers=ADMIN).status_code == 204
    assert client.get("/app/rows").status_code == 401, "a revoked key's session ends"


def test_bad_input_gets_a_4xx_and_another_tenant_s_ticket_is_absent(client, agent, app):
    theirs = _ticket(client, new_key(client, ["tickets:write"], "another tenant"))
    token = sign_in(client, agent["key"])
    assert client.get("/app/tickets/99999999999999999999999").status_code == 422
    assert client.get(f"/app/tickets/{theirs}").status_code == 404
    for query in ("band=everything", "status=lost", "language=english", "cursor=" + "x" * 300):
        assert client.get(f"/app?{query}").status_code == 422, query
    mine = _ticket(client, agent["key"])
    sent = client.post(
        f"/app/tickets/{mine}/reply",
        data={"reply": "Your card is on its way.", "csrf_token": token},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    again = client.post(f"/app/tickets/{mine}/reply", data={"reply": "Hi", "csrf_token": token})
    assert again.status_code == 409 and again.json()["error"]["code"] == "answered"
    mine = _ticket(client, agent["key"])
    too_long = {"reply": "x" * 20_001, "csrf_token": token}
    assert client.post(f"/app/tickets/{mine}/reply", data=too_long).status_code == 422
    blank = {"reply": " \r\n ", "csrf_token": token}
    assert client.post(f"/app/tickets/{mine}/reply", data=blank).status_code == 422
    unknown = {"intent": "no_such_intent", "csrf_token": token}
    assert client.post(f"/app/tickets/{mine}/corrections", data=unknown).status_code == 422
