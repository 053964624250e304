"""What a binary diagnosis is judged by: AUC, accuracy at a threshold, sensitivity,
specificity, balanced accuracy and calibration; and how the threshold and temperature are
chosen on the validation split."""

import numpy as np

CALIBRATION_BINS = 10


def auc(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random positive outscores a random negative
    (ties count half), from ranks."""
    order = np.argsort(probabilities, kind="mergesort")
    ranks = np.empty(len(order), dtype=np.float64)
    sorted_scores = probabilities[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first, counts, strict=True):
        ranks[order[start : start + count]] = start + (count + 1) / 2
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def confusion(predicted: np.ndarray, labels: np.ndarray) -> dict[str, int]:
    """Counts with pneumonia as the positive class."""
    return {
        "true_negative": int(((predicted == 0) & (labels == 0)).sum()),
        "false_positive": int(((predicted == 1) & (labels == 0)).sum()),
        "false_negative": int(((predicted == 0) & (labels == 1)).sum()),
        "true_positive": int(((predicted == 1) & (labels == 1)).sum()),
    }


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """ECE over equal-width bins of the predicted class's confidence."""
    predicted = (probabilities >= 0.5).astype(np.int64)
    confidence = np.where(predicted == 1, probabilities, 1 - probabilities)
    correct = (predicted == labels).astype(np.float64)
    bins = np.minimum((confidence - 0.5) * 2 * CALIBRATION_BINS, CALIBRATION_BINS - 1).astype(int)
    error = 0.0
    for b in range(CALIBRATION_BINS):
        members = bins == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def report(probabilities: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Every figure the issue asks for, at `threshold`."""
    predicted = (probabilities >= threshold).astype(np.int64)
    counts = confusion(predicted, labels)
    sensitivity = counts["true_positive"] / max(
        1, counts["true_positive"] + counts["false_negative"]
    )
    specificity = counts["true_negative"] / max(
        1, counts["true_negative"] + counts["false_positive"]
    )
    return {
        "images": len(labels),
        "accuracy": round(float((predicted == labels).mean()), 4),
        "auc": round(auc(probabilities, labels), 4),
        "sensitivity": round(sensitivity, 4),
        "specificity": round(specificity, 4),
        "balanced_accuracy": round((sensitivity + specificity) / 2, 4),
        "ece": round(expected_calibration_error(probabilities, labels), 4),
        "threshold": round(float(threshold), 4),
        "confusion": counts,
    }


def balanced_threshold(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The threshold with the best balanced accuracy (Youden's J) on these images.

    Balanced accuracy, not accuracy: it does not depend on the share of pneumonia cases, and the
    test split (and a clinic) has a different share from the validation split it is chosen on.
    Of several equally good thresholds, the middle one; the threshold returned lies halfway
    between that score and the next lower one, so it sorts every image as that score does."""
    candidates = np.unique(probabilities)
    positives, negatives = labels == 1, labels == 0
    scores = np.array(
        [
            (probabilities[positives] >= t).mean() + (probabilities[negatives] < t).mean()
            for t in candidates
        ]
    )
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    i = int(best[len(best) // 2])
    return float((candidates[i - 1] + candidates[i]) / 2) if i > 0 else float(candidates[0] / 2)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T that minimises the log loss of sigmoid(logit / T) (Guo et al. 2017)."""
    best, best_loss = 1.0, float("inf")
    for temperature in np.exp(np.linspace(np.log(0.25), np.log(8.0), 241)):
        scaled = logits / temperature
        # log(1 + e^-|x|) + max(x, 0) - x*y: stable binary cross-entropy
        loss = np.mean(np.logaddexp(0, scaled) - scaled * labels)
        if loss < best_loss:
            best, best_loss = float(temperature), float(loss)
    return best
