"""The validation gate on hand-made predictions: each criterion fails alone and names itself."""

import pytest

from export.gate import Evaluation, GateCriteria, recall_by_intent, run_gate

# 20 texts of 2 intents; production gets 18 right: one miss in each intent.
TRUTH = ["card_arrival"] * 10 + ["lost_or_stolen_card"] * 10
PRODUCTION = (
    ["card_arrival"] * 9 + ["lost_or_stolen_card"] + ["lost_or_stolen_card"] * 9 + ["card_arrival"]
)
FAST = [0.010, 0.011, 0.012]


def _gate(candidate, *, seconds=FAST, criteria=None, extra=()):
    evaluations = [Evaluation("test", TRUTH, PRODUCTION, candidate), *extra]
    return run_gate(evaluations, FAST, seconds, criteria or GateCriteria())


def test_a_candidate_as_good_as_production_passes():
    result = _gate(list(PRODUCTION))
    assert result.passed
    assert result.reasons == []
    assert result.metrics["sets"]["test"] == {
        "texts": 20,
        "production_accuracy": 0.9,
        "candidate_accuracy": 0.9,
    }


def test_lower_accuracy_fails_alone_and_names_itself():
    # one more miss (card_arrival 90 → 80 %): a 10-point recall margin leaves accuracy alone
    candidate = list(PRODUCTION)
    candidate[0] = "lost_or_stolen_card"
    result = _gate(candidate, criteria=GateCriteria(max_recall_drop=10))
    assert not result.passed
    assert len(result.reasons) == 1
    assert result.reasons[0].startswith("accuracy on test (20 texts): candidate 85.00 %")
    assert "production 90.00 %" in result.reasons[0]


def test_accuracy_tolerance_lets_a_small_drop_through():
    candidate = list(PRODUCTION)
    candidate[0] = "lost_or_stolen_card"
    criteria = GateCriteria(accuracy_tolerance=5, max_recall_drop=10)
    assert _gate(candidate, criteria=criteria).passed


def test_a_recall_drop_fails_alone_and_names_the_intent():
    # accuracy as production's (18/20): card_arrival 90 → 80 %, lost_or_stolen_card 90 → 100 %
    candidate = ["card_arrival"] * 8 + ["lost_or_stolen_card"] * 12
    result = _gate(candidate)
    assert not result.passed
    assert len(result.reasons) == 1
    assert result.reasons[0].startswith("recall on test fell by more than 5 points for 1 of 2")
    assert "card_arrival 90.0 → 80.0 %" in result.reasons[0]
    assert "lost_or_stolen_card" not in result.reasons[0]
    assert result.metrics["recall_drops_over_margin"] == {"card_arrival": 10.0}


def test_a_recall_drop_within_the_margin_passes():
    candidate = ["card_arrival"] * 8 + ["lost_or_stolen_card"] * 12
    assert _gate(candidate, criteria=GateCriteria(max_recall_drop=10)).passed
    assert not _gate(candidate, criteria=GateCriteria(max_recall_drop=9.9)).passed


def test_slower_candidate_fails_alone_and_names_latency():
    result = _gate(list(PRODUCTION), seconds=[0.020, 0.017, 0.030])
    assert not result.passed
    assert result.reasons == [
        "latency: candidate p50 20.00 ms per batch exceeds 1.5 × production's 11.00 ms = 16.50 ms"
    ]
    assert _gate(list(PRODUCTION), seconds=[0.016, 0.0165, 0.030]).passed


def test_held_out_corrections_are_gated_on_accuracy_too():
    corrections = Evaluation(
        "corrections", ["card_arrival"] * 4, ["card_arrival"] * 4, ["card_arrival"] * 3 + ["x"]
    )
    result = _gate(list(PRODUCTION), extra=[corrections])
    assert not result.passed
    assert len(result.reasons) == 1
    assert result.reasons[0].startswith("accuracy on corrections (4 texts): candidate 75.00 %")


def test_every_failing_criterion_is_listed():
    shuffled = ["lost_or_stolen_card"] * 10 + ["card_arrival"] * 10
    result = _gate(shuffled, seconds=[1.0])
    assert not result.passed
    assert [r.split(" ")[0] for r in result.reasons] == ["accuracy", "recall", "latency:"]


def test_recall_by_intent_counts_only_intents_in_the_truth():
    assert recall_by_intent(["a", "a", "b"], ["a", "c", "c"]) == {"a": 0.5, "b": 0.0}


def test_mismatched_or_missing_inputs_are_refused():
    with pytest.raises(ValueError, match="equally long"):
        Evaluation("test", ["a"], ["a", "b"], ["a"])
    with pytest.raises(ValueError, match="'test'"):
        run_gate([Evaluation("corrections", ["a"], ["a"], ["a"])], FAST, FAST)
    with pytest.raises(ValueError, match="latencies"):
        run_gate([Evaluation("test", ["a"], ["a"], ["a"])], [], FAST)
