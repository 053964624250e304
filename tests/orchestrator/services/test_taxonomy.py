import json

import pytest
import yaml

from export.settings import ExportSettings
from orchestrator.services.taxonomy import (
    DEFAULT_TAXONOMY,
    PRIORITIES,
    TaxonomyError,
    default_taxonomy,
    load_taxonomy,
)


@pytest.fixture(scope="module")
def banking77_intents() -> set[str]:
    return set(json.loads((ExportSettings().banking77_dir / "categories.json").read_text()))


def test_every_banking77_intent_is_routed(banking77_intents):
    assert set(default_taxonomy().intents) == banking77_intents


def test_stolen_or_compromised_cards_are_urgent_and_fee_questions_are_not():
    taxonomy = default_taxonomy()
    for intent in ("lost_or_stolen_card", "compromised_card", "lost_or_stolen_phone"):
        assert taxonomy.route(intent).priority == "urgent", intent
        assert taxonomy.route(intent).department == "fraud", intent
    for intent in ("exchange_charge", "transfer_fee_charged", "top_up_by_card_charge", "age_limit"):
        assert taxonomy.route(intent).priority in ("low", "normal"), intent


def test_urgency_cue_raises_priority_by_one_level_and_names_the_reason():
    taxonomy = default_taxonomy()
    base = taxonomy.route("card_payment_fee_charged")
    raised = taxonomy.route("card_payment_fee_charged", "I think this is FRAUD, I never paid there")
    assert PRIORITIES.index(raised.priority) == PRIORITIES.index(base.priority) + 1
    assert raised.reasons
    assert taxonomy.route("compromised_card", "fraud! stolen! hacked!").priority == "urgent"


def test_unknown_intent_and_bad_file_are_refused(tmp_path):
    with pytest.raises(TaxonomyError, match="unknown intent"):
        default_taxonomy().route("not_an_intent")
    raw = yaml.safe_load(DEFAULT_TAXONOMY.read_text())
    raw["intents"]["card_arrival"]["priority"] = "whenever"
    broken = tmp_path / "taxonomy.yaml"
    broken.write_text(yaml.safe_dump(raw))
    with pytest.raises(TaxonomyError, match="card_arrival: unknown priority"):
        load_taxonomy(broken)


def test_answer_notes_cover_every_intent_with_literal_key_facts(banking77_intents):
    notes = yaml.safe_load((DEFAULT_TAXONOMY.parent / "answer_notes.yaml").read_text())["notes"]
    assert set(notes) == banking77_intents
    for intent, entry in notes.items():
        assert entry["key_facts"], intent
        for fact in entry["key_facts"]:
            assert fact in entry["note"], (intent, fact)
