"""Ticket signals through the API: every ticket carries its language, sentiment and
auto-reply/bulk flags; flagged mail is stored `filtered`, never drafted; the queue filters by
language and sentiment. A real orchestrator with its worker."""

import time

from tests.orchestrator.services.test_ticket_signals import MAIL, raw_mail
from tests.utils.orchestrator import new_key, new_tenant


def _tenant(api, name: str) -> dict:
    tenant = new_tenant(api, name)["id"]
    return {"X-API-Key": new_key(api, ["tickets:write", "tickets:read"], tenant)}


def test_auto_replies_and_bulk_mail_are_filtered_and_never_drafted(api):
    headers = _tenant(api, "signals mail")
    sent = {}
    for message in MAIL:
        answer = api.post(
            "/v1/intake/email",
            content=raw_mail(message),
            headers={**headers, "Content-Type": "message/rfc822"},
        )
        assert answer.status_code == 202, answer.text
        flagged = message["auto_reply"] or message["spam"]
        assert answer.json()["status"] == ("filtered" if flagged else "queued"), message["name"]
        sent[answer.json()["id"]] = message
    time.sleep(1)  # the worker had time to take anything it was given
    for ticket_id, message in sent.items():
        ticket = api.get(f"/v1/tickets/{ticket_id}", headers=headers).json()
        assert (ticket["auto_reply"], ticket["spam"]) == (message["auto_reply"], message["spam"])
        if message["auto_reply"] or message["spam"]:
            assert ticket["status"] == "filtered" and ticket["draft"] is None
            assert ticket["triage"] is None and ticket["automation_reasons"]
            assert ticket["processed_at"] is not None
    filtered = api.get("/v1/tickets", params={"status": "filtered"}, headers=headers).json()
    assert len(filtered["data"]) == sum(m["auto_reply"] or m["spam"] for m in MAIL)


def test_tickets_carry_language_and_sentiment_and_the_queue_filters_by_them(api):
    headers = _tenant(api, "signals queue")
    texts = {
        ("de", "very_negative"): "Das ist eine Katastrophe, ich bin wütend! Unverschämt!",
        ("fr", "very_positive"): "Merci beaucoup, votre équipe est géniale. Parfait !",
        ("en", "neutral"): "How do I change the PIN of my card?",
    }
    for (language, mood), body in texts.items():
        created = api.post(
            "/v1/tickets", json={"subject": "-", "body": body}, headers=headers
        ).json()
        ticket = api.get(f"/v1/tickets/{created['id']}", headers=headers).json()
        assert (ticket["language"], ticket["sentiment"]) == (language, mood), body
    for params, expected in (
        ({"language": "de"}, {"de"}),
        ({"sentiment": "very_positive"}, {"fr"}),
        ({"language": "en", "sentiment": "neutral"}, {"en"}),
        ({"language": "it"}, set()),
    ):
        found = api.get("/v1/tickets", params=params, headers=headers).json()["data"]
        assert {t["language"] for t in found} == expected, params
    for bad in ({"language": "German"}, {"sentiment": "angry"}):
        assert api.get("/v1/tickets", params=bad, headers=headers).status_code == 422
