"""Corrections through the API keep their provenance; in process, without Triton (fast)."""

import pytest

from tests.utils.feedback import (
    agent_headers,
    app_without_triton,
    correct,
    intent_feedback,
    new_ticket,
)

TICKET = {"subject": "Card stolen", "body": "Someone took my card on the train."}


@pytest.fixture(scope="module")
def client(database_url):
    with app_without_triton(database_url) as client:
        yield client


@pytest.fixture(scope="module")
def agent(client):
    return agent_headers(client, "feedback tenant")


def test_a_correction_keeps_the_key_the_prediction_its_model_version_and_time(client, agent):
    ticket_id = new_ticket(client, agent, TICKET, "card_arrival", model_version="3")
    ticket = client.get(f"/v1/tickets/{ticket_id}", headers=agent).json()
    assert ticket["triage"]["model_version"] == "3"
    corrected = correct(client, agent, ticket_id, intent="lost_or_stolen_card")
    assert corrected["triage"]["intent"] == "lost_or_stolen_card"
    assert corrected["triage"]["model_version"] == "3"  # the version that predicted
    item = intent_feedback(client, agent)[ticket_id]
    assert item["old_value"] == "card_arrival" and item["new_value"] == "lost_or_stolen_card"
    assert item["model_version"] == "3" and item["model_confidence"] == pytest.approx(0.41)
    assert isinstance(item["key_id"], int) and item["created_at"]
    assert item["text"] == "Card stolen\nSomeone took my card on the train."


def test_an_intent_set_before_triage_is_kept_and_shown_without_a_confidence(client, agent):
    """The agent's intent is the ticket's (the worker then skips triage): no model predicted."""
    ticket_id = new_ticket(client, agent, {**TICKET, "body": "PIN blocked"})
    corrected = correct(client, agent, ticket_id, intent="pin_blocked")
    assert corrected["triage"]["intent"] == "pin_blocked"
    assert corrected["triage"]["confidence"] is None
    assert corrected["triage"]["model_version"] is None
    item = intent_feedback(client, agent)[ticket_id]
    assert item["old_value"] is None and item["model_version"] is None
    assert item["model_confidence"] is None
    assert client.get(f"/v1/tickets/{ticket_id}", headers=agent).status_code == 200
