from orchestrator.services.drafts import (
    draft_messages,
    fallback,
    grounded,
    load_notes,
    missing_facts,
)


def test_prompt_carries_the_policy_note_and_the_ticket():
    note = load_notes()["card_arrival"]
    messages = draft_messages(note, "Where is my card?", "Ordered it two weeks ago.")
    assert note.note in messages[0]["content"]
    assert "Where is my card?" in messages[1]["content"]
    assert "Ordered it two weeks ago." in messages[1]["content"]


def test_a_draft_missing_key_facts_gets_the_note_appended():
    note = load_notes()["lost_or_stolen_card"]
    complete = " ".join(note.key_facts)
    assert missing_facts(complete, note) == []
    assert grounded(complete, note).text == complete
    reply = "Sorry to hear that. Please freeze your card."
    # What the guardrail reacts to is checked on the LLM's reply, before it acts ...
    assert missing_facts(reply, note) == list(note.key_facts)
    assert missing_facts("Use Cards > FREEZE now.", note) == list(note.key_facts[1:])
    partial = grounded(reply, note)
    # ... and what it does: the reply kept whole, the note appended once.
    assert partial.source == "llm"
    assert partial.text == f"{reply}\n\nWhat to do: {note.note}"


def test_every_note_states_its_own_key_facts():
    """The guardrail appends the note to carry missing facts: that works only if it has them."""
    for intent, note in load_notes().items():
        assert note.key_facts, intent
        assert missing_facts(note.note, note) == [], intent


def test_fallback_is_built_from_the_note_and_marked():
    note = load_notes()["exchange_charge"]
    draft = fallback(note)
    assert draft.source == "fallback"
    assert note.note in draft.text
    assert grounded("   ", note).text == draft.text
