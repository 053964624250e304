"""The validation gate on hand-made predictions: each criterion fails alone and names itself."""

import itertools
import random

import pytest

from export.gate import (
    Evaluation,
    GateCriteria,
    chance_of_exceeding,
    critical_net_loss,
    net_losses,
    recall_by_intent,
    run_gate,
)

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


MARGIN_ALONE = GateCriteria(recall_alpha=1)  # every drop over the margin refused


def test_a_recall_drop_fails_alone_and_names_the_intent():
    # accuracy as production's (18/20): card_arrival 90 → 80 %, lost_or_stolen_card 90 → 100 %
    candidate = ["card_arrival"] * 8 + ["lost_or_stolen_card"] * 12
    result = _gate(candidate, criteria=MARGIN_ALONE)
    assert not result.passed
    assert len(result.reasons) == 1
    assert result.reasons[0].startswith(
        "recall on test fell by more than 5 points, and by more than 0 texts"
    )
    assert "for 1 of 2 intents: card_arrival 90.0 → 80.0 %" in result.reasons[0]
    assert "lost_or_stolen_card" not in result.reasons[0]
    assert result.metrics["recall_drops_over_margin"] == {"card_arrival": 10.0}
    assert result.metrics["recall_drops_refused"] == {"card_arrival": 10.0}


def test_a_recall_drop_within_the_margin_passes():
    candidate = ["card_arrival"] * 8 + ["lost_or_stolen_card"] * 12
    assert _gate(candidate, criteria=GateCriteria(max_recall_drop=10, recall_alpha=1)).passed
    assert not _gate(candidate, criteria=GateCriteria(max_recall_drop=9.9, recall_alpha=1)).passed


def test_a_one_text_drop_is_within_chance():
    # the same drop, one text against one gained: two equally good models do that often
    candidate = ["card_arrival"] * 8 + ["lost_or_stolen_card"] * 12
    result = _gate(candidate)
    assert result.passed
    assert result.metrics["recall_drops_over_margin"] == {"card_arrival": 10.0}
    assert result.metrics["recall_drops_refused"] == {}
    assert result.metrics["recall_chance"]["critical_net_loss_texts"] == 1


def _banking77_shaped(net_losses_of: dict[int, int]):
    """77 intents of 40 test texts; production misses 2 of each; the candidate disagrees with
    production on 4 texts of each intent, a net loss of 0 unless `net_losses_of` says."""
    truth, production, candidate = [], [], []
    for intent in range(77):
        name = f"intent_{intent}"
        loss = net_losses_of.get(intent, 0)
        # production misses texts 0-1; the candidate gains from those, loses from 2 on
        gains = min(2, max(0, 2 - loss))
        losses = loss + gains
        for text in range(40):
            truth.append(name)
            production.append(name if text >= 2 else "other")
            right = text < gains or text >= 2 + losses
            candidate.append(name if right else "other")
    return Evaluation("test", truth, production, candidate)


def _gate_on(evaluation, criteria=None):
    return run_gate([evaluation], FAST, FAST, criteria or GateCriteria())


def test_net_losses_count_disagreements_per_intent():
    evaluation = _banking77_shaped({3: 5})
    loss, disagreements = net_losses(evaluation)
    assert loss["intent_3"] == 5 and loss["intent_0"] == 0
    assert disagreements["intent_0"] == 4 and disagreements["intent_3"] == 5


def test_a_few_texts_lost_in_one_of_77_intents_pass_and_a_collapse_is_refused():
    # 3 texts (7.5 points, over the 5-point margin) is what chance gives equally good models
    as_accurate = {10: 3, 11: -2, 12: -1}  # two other intents gain what intent 10 loses
    few = _gate_on(_banking77_shaped(as_accurate))
    assert few.passed, few.reasons
    assert few.metrics["recall_drops_over_margin"] == {"intent_10": 7.5}
    assert few.metrics["recall_chance"]["margin_alone_refuses"] > 0.5
    assert not _gate_on(_banking77_shaped(as_accurate), MARGIN_ALONE).passed
    collapsed = _gate_on(_banking77_shaped({10: 30}), GateCriteria(accuracy_tolerance=1))
    assert not collapsed.passed
    assert len(collapsed.reasons) == 1
    assert "intent_10 95.0 → 20.0 %" in collapsed.reasons[0]
    assert collapsed.metrics["recall_drops_refused"] == {"intent_10": 75.0}


def _brute_force_chance(limit: int, disagreements: list[int]) -> float:
    """Every way the disagreements' coins can fall, counted."""
    exceeded = 0
    coins = sum(disagreements)
    for outcome in itertools.product((1, -1), repeat=coins):
        start, worst = 0, -coins
        for n in disagreements:
            worst = max(worst, sum(outcome[start : start + n]))
            start += n
        exceeded += worst > limit
    return exceeded / 2**coins


@pytest.mark.parametrize("limit", [0, 1, 2, 3, 5])
def test_the_chance_of_a_net_loss_matches_counting_every_outcome(limit):
    disagreements = [3, 5, 0, 4]
    exact = chance_of_exceeding(dict.fromkeys(range(4), limit), dict(enumerate(disagreements)))
    assert exact == pytest.approx(_brute_force_chance(limit, disagreements))


def test_equally_good_candidates_are_refused_at_most_alpha_of_the_time():
    # simulated: each disagreement a fair coin; the margin alone refuses most of them
    rng = random.Random(7)
    disagreements = {f"intent_{i}": 2 + i % 7 for i in range(77)}
    critical = critical_net_loss(disagreements, 0.05)
    refused = margin_refused = 0
    trials = 2000
    for _ in range(trials):
        worst = max(sum(rng.choice((1, -1)) for _ in range(n)) for n in disagreements.values())
        refused += worst > critical
        margin_refused += worst > 2  # 5 points of 40 texts
    assert refused / trials <= 0.05 + 0.015
    assert margin_refused / trials > 0.5
    stricter, looser = (
        critical_net_loss(disagreements, 0.001),
        critical_net_loss(disagreements, 0.5),
    )
    assert looser < critical < stricter
    assert critical_net_loss({}, 0.05) == 0


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
    with pytest.raises(ValueError, match="recall_alpha"):
        GateCriteria(recall_alpha=0)
    with pytest.raises(ValueError, match="latencies"):
        run_gate([Evaluation("test", ["a"], ["a"], ["a"])], [], FAST)
