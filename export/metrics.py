"""Classification and latency summaries shared by evaluation and benchmarks."""

from collections import Counter

import numpy as np


def accuracy(predicted: list[str], expected: list[str]) -> float:
    return sum(p == e for p, e in zip(predicted, expected, strict=True)) / len(expected)


def macro_f1(predicted: list[str], expected: list[str]) -> float:
    """Unweighted mean of per-class F1 over the classes that occur in `expected`."""
    true_pos = Counter(e for p, e in zip(predicted, expected, strict=True) if p == e)
    predicted_count, expected_count = Counter(predicted), Counter(expected)
    scores = []
    for label in expected_count:
        precision = true_pos[label] / predicted_count[label] if predicted_count[label] else 0.0
        recall = true_pos[label] / expected_count[label]
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return sum(scores) / len(scores)


def latency_summary(seconds: list[float]) -> dict[str, float]:
    """p50/p95/p99 in milliseconds."""
    values = np.asarray(seconds) * 1000.0
    return {f"p{q}_ms": round(float(np.percentile(values, q)), 2) for q in (50, 95, 99)}
