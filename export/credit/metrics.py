"""What a probability of default is judged by: AUC (ranking), the Kolmogorov-Smirnov
statistic (the widest gap between the defaulters' and the others' score distributions, the
lenders' usual figure), the Brier score and a calibration curve (are the probabilities
right?), and the expected cost of a decision under a cost matrix."""

import numpy as np

from export.xray.metrics import auc

CALIBRATION_BINS = 10


def ks_statistic(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """max |F_default(p) - F_repaid(p)| over the probabilities' values."""
    order = np.argsort(probabilities, kind="mergesort")
    ordered, sorted_labels = probabilities[order], labels[order]
    cumulative_bad = np.cumsum(sorted_labels) / max(1, sorted_labels.sum())
    cumulative_good = np.cumsum(1 - sorted_labels) / max(1, (1 - sorted_labels).sum())
    last_of_value = np.r_[ordered[1:] != ordered[:-1], True]  # ties move together
    return float(np.abs(cumulative_bad - cumulative_good)[last_of_value].max())


def calibration_curve(probabilities: np.ndarray, labels: np.ndarray) -> list[dict]:
    """Equal-count bins of the predicted probability: its mean against the observed rate."""
    order = np.argsort(probabilities, kind="mergesort")
    return [
        {
            "applicants": len(part),
            "predicted": round(float(probabilities[part].mean()), 4),
            "observed": round(float(labels[part].mean()), 4),
        }
        for part in np.array_split(order, CALIBRATION_BINS)
        if len(part)
    ]


def report(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    curve = calibration_curve(probabilities, labels)
    weights = np.array([b["applicants"] for b in curve]) / len(labels)
    gaps = np.array([abs(b["predicted"] - b["observed"]) for b in curve])
    return {
        "applicants": len(labels),
        "default_rate": round(float(labels.mean()), 4),
        "auc": round(auc(probabilities, labels), 4),
        "ks": round(ks_statistic(probabilities, labels), 4),
        "brier": round(float(np.mean((probabilities - labels) ** 2)), 4),
        "calibration_error": round(float((weights * gaps).sum()), 4),
        "calibration_curve": curve,
    }


def expected_cost(
    probabilities: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    cost_accept_bad: float,
    cost_refuse_good: float,
) -> float:
    """The mean cost per applicant when those below `threshold` are accepted."""
    accepted = probabilities < threshold
    costs = np.where(accepted & (labels == 1), cost_accept_bad, 0.0) + np.where(
        ~accepted & (labels == 0), cost_refuse_good, 0.0
    )
    return float(costs.mean())


def cost_threshold(cost_accept_bad: float, cost_refuse_good: float) -> float:
    """The probability of default above which refusing costs less than accepting, for
    calibrated probabilities: p * cost_accept_bad > (1 - p) * cost_refuse_good."""
    return cost_refuse_good / (cost_refuse_good + cost_accept_bad)
