"""The validation gate a retrained candidate must pass before it may replace production.

Pure functions over predictions already made: `python -m export retrain` runs both models on
the same texts and hands the gate, per evaluation set, the true intent of each text and what
production and the candidate predicted, plus the seconds each model took per batch.

The criteria (GateCriteria holds the numbers; every one is checked, every failure is named):

- accuracy: on each evaluation set (the frozen Banking77 test split, and held-out recent
  corrections when there are any), the candidate's accuracy is not below production's minus
  `accuracy_tolerance` points (0 by default: not lower at all);
- recall: on the frozen test split, no intent's recall falls by more than `max_recall_drop`
  points (5 by default) from production's; the failing intents are named;
- latency: the candidate's median (p50) seconds per batch is within `latency_budget` times
  production's (1.5 by default).
"""

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

TEST_SET = "test"  # the frozen split: recall is gated on it
# The most recent share of a snapshot's corrections kept out of training to be gated on.
HOLDOUT_FRACTION = 0.2


@dataclass(frozen=True)
class GateCriteria:
    accuracy_tolerance: float = 0.0  # points below production's accuracy allowed
    max_recall_drop: float = 5.0  # points any one intent's recall may fall
    latency_budget: float = 1.5  # candidate p50 per batch ≤ this × production's


@dataclass(frozen=True)
class Evaluation:
    """Both models' predictions on one evaluation set, text by text."""

    name: str
    truth: Sequence[str]
    production: Sequence[str]
    candidate: Sequence[str]

    def __post_init__(self) -> None:
        sizes = {len(self.truth), len(self.production), len(self.candidate)}
        if len(sizes) != 1 or not self.truth:
            raise ValueError(
                f"evaluation {self.name!r}: truth, production and candidate must be equally "
                f"long and not empty, got {len(self.truth)}, {len(self.production)}, "
                f"{len(self.candidate)}"
            )


@dataclass
class GateResult:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    return sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)


def recall_by_intent(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """Recall of every intent that occurs in `truth`."""
    support = Counter(truth)
    hits = Counter(t for t, p in zip(truth, predicted, strict=True) if t == p)
    return {intent: hits[intent] / n for intent, n in sorted(support.items())}


def p50(seconds: Sequence[float]) -> float:
    return statistics.median(seconds)


def run_gate(
    evaluations: Sequence[Evaluation],
    production_seconds: Sequence[float],
    candidate_seconds: Sequence[float],
    criteria: GateCriteria = GateCriteria(),
) -> GateResult:
    """Check every criterion; the result names each one that failed, with its figures."""
    if not any(e.name == TEST_SET for e in evaluations):
        raise ValueError(f"the gate needs the {TEST_SET!r} evaluation set")
    if not production_seconds or not candidate_seconds:
        raise ValueError("the gate needs latencies of both models")
    reasons: list[str] = []
    metrics: dict = {"criteria": asdict(criteria), "sets": {}}
    for evaluation in evaluations:
        production = accuracy(evaluation.truth, evaluation.production)
        candidate = accuracy(evaluation.truth, evaluation.candidate)
        metrics["sets"][evaluation.name] = {
            "texts": len(evaluation.truth),
            "production_accuracy": round(production, 4),
            "candidate_accuracy": round(candidate, 4),
        }
        floor = production - criteria.accuracy_tolerance / 100
        if candidate < floor - 1e-12:
            reasons.append(
                f"accuracy on {evaluation.name} ({len(evaluation.truth)} texts): candidate "
                f"{100 * candidate:.2f} % is below production {100 * production:.2f} % "
                f"minus the tolerance of {criteria.accuracy_tolerance:g} points"
            )
    test = next(e for e in evaluations if e.name == TEST_SET)
    before = recall_by_intent(test.truth, test.production)
    after = recall_by_intent(test.truth, test.candidate)
    drops = {
        intent: 100 * (before[intent] - after[intent])
        for intent in before
        if 100 * (before[intent] - after[intent]) > criteria.max_recall_drop + 1e-9
    }
    metrics["recall_drops_over_margin"] = {i: round(d, 2) for i, d in sorted(drops.items())}
    metrics["intents_checked"] = len(before)
    if drops:
        worst = sorted(drops, key=lambda i: (-drops[i], i))
        shown = ", ".join(f"{i} {100 * before[i]:.1f} → {100 * after[i]:.1f} %" for i in worst[:10])
        more = f" and {len(worst) - 10} more" if len(worst) > 10 else ""
        reasons.append(
            f"recall on {TEST_SET} fell by more than {criteria.max_recall_drop:g} points for "
            f"{len(drops)} of {len(before)} intents: {shown}{more}"
        )
    production_p50, candidate_p50 = p50(production_seconds), p50(candidate_seconds)
    budget = criteria.latency_budget * production_p50
    metrics["latency"] = {
        "production_p50_ms_per_batch": round(1000 * production_p50, 3),
        "candidate_p50_ms_per_batch": round(1000 * candidate_p50, 3),
        "budget_ms": round(1000 * budget, 3),
    }
    if candidate_p50 > budget:
        reasons.append(
            f"latency: candidate p50 {1000 * candidate_p50:.2f} ms per batch exceeds "
            f"{criteria.latency_budget:g} × production's {1000 * production_p50:.2f} ms "
            f"= {1000 * budget:.2f} ms"
        )
    return GateResult(passed=not reasons, reasons=reasons, metrics=metrics)
