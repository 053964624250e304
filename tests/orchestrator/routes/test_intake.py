"""Intake channels: raw e-mail and HMAC-signed CRM webhooks become ordinary tickets."""

import json
import time

import pytest

from orchestrator.services.email_intake import MalformedEmail, html_to_text, parse_email
from tests.utils.orchestrator import admin, error_of, new_key, new_tenant
from tests.utils.webhooks import send_webhook, webhook_event

PLAIN_MAIL = b"""From: Ana Silva <ana@example.com>
To: support@northwind.example
Subject: Card not arrived
Message-ID: <abc123@example.com>
Content-Type: text/plain; charset=utf-8

Hello, I ordered a new card two weeks ago and it still has not arrived.

Thanks,
--
Ana Silva
Head of Things, Example Ltd

On Mon, 2 Nov 2026 at 10:00, Northwind Support <support@northwind.example> wrote:
> Your card is on its way.
"""

HTML_MAIL = b"""From: bob@example.com
Subject: PIN blocked
Message-ID: <html-1@example.com>
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

<html><head><style>p {color: red}</style></head><body><p>I typed the wrong PIN
three times.</p><p>Now it is <b>blocked</b> &amp; I need cash.</p>
<blockquote>Earlier message quoted here</blockquote></body></html>
"""


def test_plain_mail_keeps_only_the_customers_words():
    parsed = parse_email(PLAIN_MAIL)
    assert parsed.subject == "Card not arrived" and parsed.sender == "ana@example.com"
    assert parsed.body.startswith("Hello, I ordered a new card")
    assert "Head of Things" not in parsed.body and "on its way" not in parsed.body
    assert parsed.message_id == "<abc123@example.com>"


def test_html_only_mail_is_converted_to_text():
    parsed = parse_email(HTML_MAIL)
    assert "color" not in parsed.body and "Earlier message" not in parsed.body
    assert "I typed the wrong PIN three times." in parsed.body
    assert "Now it is blocked & I need cash." in parsed.body
    assert html_to_text("<p>a</p><p>b</p>") == "a\n\nb"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"just some words without headers",
        b"Subject: no sender\n\nbody text",
    ],
)
def test_malformed_mail_is_refused(raw):
    with pytest.raises(MalformedEmail):
        parse_email(raw)


@pytest.fixture(scope="module")
def tenant(api):
    created = new_tenant(api, "intake tenant")
    key = new_key(api, ["tickets:write", "tickets:read"], created["id"])
    return {"id": created["id"], "secret": created["webhook_secret"], "key": {"X-API-Key": key}}


def test_email_intake_makes_a_ticket_and_redelivery_returns_it(api, tenant):
    headers = {**tenant["key"], "Content-Type": "message/rfc822"}
    first = api.post("/v1/intake/email", content=PLAIN_MAIL, headers=headers)
    assert first.status_code == 202, first.text
    ticket = api.get(f"/v1/tickets/{first.json()['id']}", headers=tenant["key"]).json()
    assert ticket["channel"] == "email" and ticket["customer_email"] == "ana@example.com"
    assert "Head of Things" not in ticket["body"]
    again = api.post("/v1/intake/email", content=PLAIN_MAIL, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    html = api.post("/v1/intake/email", content=HTML_MAIL, headers=headers)
    assert html.status_code == 202


def test_malformed_email_gets_422(api, tenant):
    headers = {**tenant["key"], "Content-Type": "message/rfc822"}
    response = api.post("/v1/intake/email", content=b"Subject: x\n\nno sender", headers=headers)
    assert response.status_code == 422 and error_of(response)["code"] == "malformed_email"
    assert api.post("/v1/intake/email", content=PLAIN_MAIL).status_code == 401


def test_a_signed_webhook_makes_a_ticket(api, tenant):
    response = send_webhook(api, tenant, webhook_event(external_id="crm-7"))
    assert response.status_code == 202, response.text
    ticket = api.get(f"/v1/tickets/{response.json()['id']}", headers=tenant["key"]).json()
    assert ticket["channel"] == "webhook" and ticket["external_id"] == "crm-7"
    assert ticket["metadata"] == {"crm": "test"}


def test_bad_and_stale_signatures_get_401_and_a_replay_the_same_ticket(api, tenant):
    body = webhook_event()
    first = send_webhook(api, tenant, body)
    assert first.status_code == 202
    replay = send_webhook(api, tenant, body)  # answered with the ticket it made, nothing more
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    wrong = send_webhook(api, tenant, webhook_event(), signature="sha256=" + "0" * 64)
    assert wrong.status_code == 401 and error_of(wrong)["code"] == "bad_signature"
    assert send_webhook(api, tenant, webhook_event(), signature="").status_code == 401
    stale = send_webhook(api, tenant, webhook_event(timestamp=int(time.time()) - 3600))
    assert stale.status_code == 401 and "window" in error_of(stale)["message"]
    other = new_tenant(api, "other intake tenant")
    # Signed with this tenant's secret but sent as the other one.
    foreign = send_webhook(api, tenant, webhook_event(), tenant_id=other["id"])
    assert foreign.status_code == 401
    assert send_webhook(api, tenant, webhook_event(), tenant_id=987654).status_code == 401


def test_a_rotated_secret_replaces_the_old_one(api, tenant):
    rotated = admin(api, "POST", f"/v1/admin/tenants/{tenant['id']}/webhook-secret")
    assert rotated.status_code == 200
    assert send_webhook(api, tenant, webhook_event()).status_code == 401
    tenant["secret"] = rotated.json()["webhook_secret"]
    assert send_webhook(api, tenant, webhook_event()).status_code == 202


def test_a_signed_but_invalid_payload_gets_422(api, tenant):
    not_json = b"{broken"
    assert send_webhook(api, tenant, not_json).status_code == 422
    missing = json.dumps({"event_id": "e", "timestamp": int(time.time())}).encode()
    response = send_webhook(api, tenant, missing)
    assert response.status_code == 422 and error_of(response)["param"] == "subject"
    no_tenant_header = api.post("/v1/intake/webhook", content=webhook_event())
    assert no_tenant_header.status_code == 422
