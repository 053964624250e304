"""The validation gate a retrained candidate must pass before it may replace production.

Pure functions over predictions already made: `python -m export retrain` runs both models on
the same texts and hands the gate, per evaluation set, the true intent of each text and what
production and the candidate predicted, plus the seconds each model took per batch.

The criteria (GateCriteria holds the numbers; every one is checked, every failure is named):

- accuracy: on each evaluation set (the frozen Banking77 test split, and held-out recent
  corrections when there are any), the candidate's accuracy is not below production's minus
  `accuracy_tolerance` points (0 by default: not lower at all);
- recall: on the frozen test split, no intent's recall falls by more than `max_recall_drop`
  points (5 by default) from production's beyond chance; the failing intents are named.
  "Beyond chance": Banking77 has 40 test texts an intent, so 5 points is 2 texts, and two
  models that are equally good disagree on a few texts of most intents. Each text exactly one
  of the two gets right is a loss or a gain for the candidate; if the candidate were as good
  as production on every intent, each would be a fair coin, independently (McNemar's exact
  test). The largest net loss of any intent then has a known distribution (the product of the
  intents' binomial ones), and an intent is refused only when its net loss is one that this
  largest would reach less than `recall_alpha` (5 %) of the time: the gate refuses a candidate
  as good as production on every intent at most that often, whatever the number of intents.
  A collapsed intent (shuffled labels, poisoned corrections) is far beyond it. `recall_alpha`
  1 checks the margin alone;
- latency: the candidate's median (p50) seconds per batch is within `latency_budget` times
  production's (1.5 by default).
"""

import math
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
    recall_alpha: float = 0.05  # chance of refusing a candidate no worse on any intent
    latency_budget: float = 1.5  # candidate p50 per batch ≤ this × production's

    def __post_init__(self) -> None:
        if not 0 < self.recall_alpha <= 1:
            raise ValueError(f"recall_alpha must be in (0, 1], got {self.recall_alpha}")


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


def net_losses(evaluation: Evaluation) -> tuple[dict[str, int], dict[str, int]]:
    """Per intent: the candidate's net loss in texts (texts only production gets right, less
    texts only the candidate gets right) and the number of such disagreements."""
    loss: Counter = Counter()
    disagreements: Counter = Counter()
    rows = zip(evaluation.truth, evaluation.production, evaluation.candidate, strict=True)
    for truth, production, candidate in rows:
        if (production == truth) != (candidate == truth):
            disagreements[truth] += 1
            loss[truth] += 1 if production == truth else -1
    return {i: loss[i] for i in set(evaluation.truth)}, dict(disagreements)


def _net_loss_at_most(limit: int, disagreements: int) -> float:
    """P(net loss <= limit) when each of `disagreements` texts is a fair coin."""
    # net loss = 2 * losses - disagreements, losses ~ Binomial(disagreements, 1/2)
    most_losses = math.floor((limit + disagreements) / 2)
    if most_losses < 0:
        return 0.0
    ways = sum(math.comb(disagreements, k) for k in range(min(most_losses, disagreements) + 1))
    return ways / 2**disagreements


def chance_of_exceeding(limits: dict[str, int], disagreements: dict[str, int]) -> float:
    """P(some intent's net loss exceeds its limit) for a candidate no worse on any intent."""
    below = math.prod(_net_loss_at_most(limits[i], n) for i, n in disagreements.items())
    return 1.0 - below


def critical_net_loss(disagreements: dict[str, int], alpha: float) -> int:
    """The fewest texts t such that some intent's net loss exceeds t by chance at most
    `alpha` of the time (for a candidate no worse than production on any intent)."""
    limit = 0
    while chance_of_exceeding(dict.fromkeys(disagreements, limit), disagreements) > alpha:
        limit += 1
    return limit


def _check_recall(test: Evaluation, criteria: GateCriteria, metrics: dict) -> str | None:
    before = recall_by_intent(test.truth, test.production)
    after = recall_by_intent(test.truth, test.candidate)
    support = Counter(test.truth)
    loss, disagreements = net_losses(test)
    drops = {
        intent: 100 * (before[intent] - after[intent])
        for intent in before
        if 100 * (before[intent] - after[intent]) > criteria.max_recall_drop + 1e-9
    }
    critical = critical_net_loss(disagreements, criteria.recall_alpha)
    refused = {i: d for i, d in drops.items() if loss[i] > critical}
    margin_texts = {
        i: math.floor(criteria.max_recall_drop / 100 * support[i] + 1e-9) for i in disagreements
    }
    metrics["intents_checked"] = len(before)
    metrics["recall_drops_over_margin"] = {i: round(d, 2) for i, d in sorted(drops.items())}
    metrics["recall_drops_refused"] = {i: round(d, 2) for i, d in sorted(refused.items())}
    metrics["recall_chance"] = {
        "disagreements": sum(disagreements.values()),
        "critical_net_loss_texts": critical,
        # how often the margin alone would refuse a candidate no worse on any intent
        "margin_alone_refuses": round(chance_of_exceeding(margin_texts, disagreements), 4),
    }
    if not refused:
        return None
    worst = sorted(refused, key=lambda i: (-refused[i], i))
    shown = ", ".join(f"{i} {100 * before[i]:.1f} → {100 * after[i]:.1f} %" for i in worst[:10])
    more = f" and {len(worst) - 10} more" if len(worst) > 10 else ""
    return (
        f"recall on {TEST_SET} fell by more than {criteria.max_recall_drop:g} points, and by "
        f"more than {critical} texts net (beyond chance: two equally good models lose more in "
        f"some intent under {100 * criteria.recall_alpha:g} % of the time), for {len(refused)} "
        f"of {len(before)} intents: {shown}{more}"
    )


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
    recall_reason = _check_recall(test, criteria, metrics)
    if recall_reason:
        reasons.append(recall_reason)
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
