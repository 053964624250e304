"""Tickets end to end: stored, triaged by Triton, drafted by the LLM; on SQLite and PostgreSQL."""

import json

import pytest

from tests.utils.orchestrator import TRIAGE_FIELDS, error_of, new_key, new_tenant, wait_until

TICKET = {
    "subject": "Card stolen",
    "body": "Someone stole my card on the train this morning, please block it.",
    "channel": "web",
}


@pytest.fixture(scope="module")
def tenant_a(api):
    tenant = new_tenant(api, "tenant A")
    key = new_key(api, ["tickets:write", "tickets:read"], tenant["id"])
    return {"X-API-Key": key}


@pytest.fixture(scope="module")
def tenant_b(api):
    return {"X-API-Key": new_key(api, ["tickets:write", "tickets:read"], "tenant B")}


def finished(api, headers, ticket_id: int, timeout_s: float = 90) -> dict:
    def done():
        ticket = api.get(f"/v1/tickets/{ticket_id}", headers=headers).json()
        return ticket if ticket["status"] in ("done", "failed") else None

    return wait_until(done, timeout_s, what=f"ticket {ticket_id} to finish")


def test_a_ticket_is_accepted_then_triaged_and_drafted(api, tenant_a):
    accepted = api.post("/v1/tickets", json=TICKET, headers=tenant_a)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["status"] == "queued"
    assert accepted.headers["Location"] == f"/v1/tickets/{accepted.json()['id']}"
    ticket = finished(api, tenant_a, accepted.json()["id"])
    assert ticket["status"] == "done", ticket
    triage = ticket["triage"]
    assert set(triage) == TRIAGE_FIELDS
    assert len(triage["top"]) == 5 and triage["top"][0]["intent"] == triage["intent"]
    assert triage["model_version"] == "1"  # the ensemble's version, as Triton answered
    assert ticket["draft"]["source"] in ("llm", "llm_fallback", "fallback")
    assert ticket["draft"]["text"].strip()
    assert ticket["processed_at"] is not None


def test_wait_true_answers_201_with_the_finished_ticket(api, tenant_a):
    body = {**TICKET, "body": "How do I change my PIN at an ATM?"}
    response = api.post("/v1/tickets?wait=true&timeout=90", json=body, headers=tenant_a)
    assert response.status_code == 201, response.text
    ticket = response.json()
    assert ticket["status"] == "done" and ticket["triage"] and ticket["draft"]


def test_wait_true_answers_202_when_processing_outlasts_the_timeout(api, tenant_a):
    body = {**TICKET, "body": "My top-up failed twice today."}
    response = api.post("/v1/tickets?wait=true&timeout=0.01", json=body, headers=tenant_a)
    assert response.status_code == 202 and response.json()["status"] == "queued"


def test_idempotency_key_and_external_id_return_the_same_ticket(api, tenant_a):
    headers = {**tenant_a, "Idempotency-Key": "retry-123"}
    first = api.post("/v1/tickets", json=TICKET, headers=headers)
    again = api.post("/v1/tickets", json=TICKET, headers=headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    external = {**TICKET, "external_id": "crm-42"}
    one = api.post("/v1/tickets", json=external, headers=tenant_a)
    two = api.post("/v1/tickets", json=external, headers=tenant_a)
    assert two.status_code == 200 and two.json()["id"] == one.json()["id"]


def test_tenant_b_never_sees_tenant_a_tickets(api, tenant_a, tenant_b):
    ticket_id = api.post("/v1/tickets", json=TICKET, headers=tenant_a).json()["id"]
    assert api.get(f"/v1/tickets/{ticket_id}", headers=tenant_b).status_code == 404
    patched = api.patch(f"/v1/tickets/{ticket_id}", json={"priority": "low"}, headers=tenant_b)
    assert patched.status_code == 404
    assert api.post(f"/v1/tickets/{ticket_id}/draft", headers=tenant_b).status_code == 404
    listed = api.get("/v1/tickets?limit=200", headers=tenant_b).json()["data"]
    assert ticket_id not in [t["id"] for t in listed]
    # The same external id in another tenant is another ticket.
    external = {**TICKET, "external_id": "crm-42"}
    assert api.post("/v1/tickets", json=external, headers=tenant_b).status_code == 202


def test_list_filters_and_cursor_pagination(api):
    headers = {"X-API-Key": new_key(api, ["tickets:write", "tickets:read"], "pagination")}
    ids = [
        api.post(
            "/v1/tickets", json={**TICKET, "body": f"Ticket number {i}"}, headers=headers
        ).json()["id"]
        for i in range(5)
    ]
    seen, cursor = [], None
    while True:
        page = api.get(
            "/v1/tickets", params={"limit": 2, **({"cursor": cursor} if cursor else {})},
            headers=headers,
        ).json()  # fmt: skip
        seen += [t["id"] for t in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    for ticket_id in ids:
        finished(api, headers, ticket_id)
    departments = api.get("/v1/tickets?status=done&limit=200", headers=headers).json()["data"]
    department = departments[0]["triage"]["department"]
    filtered = api.get(f"/v1/tickets?department={department}", headers=headers).json()["data"]
    assert filtered and all(t["triage"]["department"] == department for t in filtered)
    assert api.get("/v1/tickets?status=nonsense", headers=headers).status_code == 422
    assert api.get("/v1/tickets?cursor=garbage!", headers=headers).status_code == 422


def test_corrections_are_applied_and_kept_as_feedback(api, tenant_a):
    ticket_id = api.post("/v1/tickets", json=TICKET, headers=tenant_a).json()["id"]
    triage = finished(api, tenant_a, ticket_id)["triage"]
    intent = "pin_blocked" if triage["intent"] != "pin_blocked" else "card_arrival"
    priority = "urgent" if triage["priority"] != "urgent" else "low"
    response = api.patch(
        f"/v1/tickets/{ticket_id}",
        json={"intent": intent, "priority": priority, "status": "resolved"},
        headers=tenant_a,
    )
    assert response.status_code == 200, response.text
    ticket = response.json()
    assert ticket["triage"]["intent"] == intent
    assert ticket["triage"]["priority"] == priority and ticket["status"] == "resolved"
    feedback = api.get("/v1/feedback", headers=tenant_a).json()["data"]
    mine = {f["field"]: f for f in feedback if f["ticket_id"] == ticket_id}
    assert mine["intent"]["old_value"] == triage["intent"] and mine["intent"]["new_value"] == intent
    assert mine["priority"]["new_value"] == priority
    assert mine["intent"]["text"].startswith("Card stolen")
    assert mine["intent"]["model_version"] == triage["model_version"] == "1"
    assert mine["intent"]["model_confidence"] == pytest.approx(triage["confidence"])
    for bad in ({"intent": "no_such_intent"}, {"priority": "whenever"}, {"status": "queued"},
                {"department": "nowhere"}, {"colour": "red"}):  # fmt: skip
        answer = api.patch(f"/v1/tickets/{ticket_id}", json=bad, headers=tenant_a)
        assert answer.status_code == 422, (bad, answer.text)
        assert error_of(answer)["param"] == next(iter(bad))


def test_the_draft_is_regenerated_plain_and_as_server_sent_events(api, tenant_a):
    ticket_id = api.post("/v1/tickets", json=TICKET, headers=tenant_a).json()["id"]
    finished(api, tenant_a, ticket_id)
    plain = api.post(f"/v1/tickets/{ticket_id}/draft", headers=tenant_a)
    assert plain.status_code == 200 and plain.json()["draft"]["text"]
    with api.stream(
        "POST", f"/v1/tickets/{ticket_id}/draft?stream=true", headers=tenant_a
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = list(response.iter_lines())
    lines = [line for line in raw if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    final = json.loads(lines[-2].removeprefix("data: "))
    assert final["source"] in ("llm", "llm_fallback", "fallback") and final["text"]
    # the deltas, each restart replacing what came before, add up to the letter
    shown, events = "", [line.removeprefix("event: ") for line in raw if line.startswith("event:")]
    assert events.count("delta") >= 2 and events[-1] == "draft"
    for event, data in zip(events, lines, strict=False):
        text = json.loads(data.removeprefix("data: "))["text"]
        shown = shown + text if event == "delta" else text if event == "restart" else shown
    assert shown == final["text"]
    stored = api.get(f"/v1/tickets/{ticket_id}", headers=tenant_a).json()["draft"]
    assert stored == final


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"body": "no subject"}, "subject"),
        ({**TICKET, "priority": "high"}, "priority"),
        ({**TICKET, "subject": 42}, "subject"),
        ({**TICKET, "channel": "fax"}, "channel"),
        ({**TICKET, "subject": "   "}, "subject"),
        ({**TICKET, "customer_email": "not-an-address"}, "customer_email"),
        ({**TICKET, "metadata": "flat"}, "metadata"),
    ],
)
def test_bad_tickets_get_a_422_naming_the_field(api, tenant_a, body, param):
    response = api.post("/v1/tickets", json=body, headers=tenant_a)
    assert response.status_code == 422, response.text
    assert error_of(response)["param"] == param


def test_other_bad_requests_get_clear_4xx(api, tenant_a):
    huge = {**TICKET, "body": "x" * (2 << 20)}
    too_big = api.post("/v1/tickets", json=huge, headers=tenant_a)
    assert too_big.status_code == 413 and error_of(too_big)["code"] == "body_too_large"
    not_json = api.post(
        "/v1/tickets", content=b"{nope", headers={**tenant_a, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 422
    assert api.get("/v1/tickets/999999", headers=tenant_a).status_code == 404
    assert api.get("/v1/tickets/abc", headers=tenant_a).status_code == 422
    read_only = {"X-API-Key": new_key(api, ["tickets:read"], "read only")}
    assert api.post("/v1/tickets", json=TICKET, headers=read_only).status_code == 403
    assert api.post("/v1/tickets", json=TICKET).status_code == 401


def test_metrics_show_the_queue_and_generation_timings(api, tenant_a):
    ticket_id = api.post("/v1/tickets", json=TICKET, headers=tenant_a).json()["id"]
    finished(api, tenant_a, ticket_id)
    text = api.get("/metrics").text
    assert "support_jobs_queue_depth " in text and "support_jobs_oldest_age_seconds " in text
    assert 'support_jobs_processed_total{outcome="done"}' in text
    assert 'support_generation_ttft_seconds_count{source="draft"}' in text
    assert 'support_generation_tpot_seconds_count{source="draft"}' in text
