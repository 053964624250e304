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
    assert grounded(complete, note).text == complete
    partial = grounded("Sorry to hear that. Please freeze your card.", note)
    assert partial.source == "llm"
    assert partial.text.endswith(note.note)
    assert missing_facts(partial.text, note) == []


def test_fallback_is_built_from_the_note_and_marked():
    note = load_notes()["exchange_charge"]
    draft = fallback(note)
    assert draft.source == "fallback"
    assert note.note in draft.text
    assert grounded("   ", note).text == draft.text
