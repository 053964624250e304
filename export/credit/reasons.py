"""Do the reasons match the model? An applicant's top reason is the feature with the largest
contribution to its risk; moving that feature to its safe side should lower the probability
of default. A feature's safe side is its safest value: of its training quantiles, the one
with the lowest probability of default on average over training applicants (the minimum of
the model's partial dependence), so the check follows the model, not a belief about the
feature."""

from pathlib import Path

import numpy as np

from export.credit.onnx_files import outputs

QUANTILES = 21
SAMPLE_EVERY = 10  # training applicants averaged over: every tenth


def safest_values(file: Path, train_features: np.ndarray) -> np.ndarray:
    """float32 [F]: each feature's value with the lowest partial dependence."""
    sample = train_features[::SAMPLE_EVERY]
    safest = []
    for feature in range(train_features.shape[1]):
        candidates = np.unique(
            np.quantile(train_features[:, feature], np.linspace(0, 1, QUANTILES), method="lower")
        )
        risk = []
        for value in candidates:
            moved = sample.copy()
            moved[:, feature] = value
            risk.append(float(outputs(file, moved)["probability"].mean()))
        safest.append(candidates[int(np.argmin(risk))])
    return np.array(safest, dtype=np.float32)


def reasons_check(file: Path, features: np.ndarray, safest: np.ndarray) -> dict:
    """Of the applicants whose top reason raised their risk (and who are not already at its
    safest value), the share whose probability fell when it moved there."""
    before = outputs(file, features)
    top = before["contributions"].argmax(axis=1)
    rows = np.arange(len(features))
    moved = features.copy()
    moved[rows, top] = safest[top]
    judged = (before["contributions"][rows, top] > 0) & (features[rows, top] != safest[top])
    after = outputs(file, moved)["probability"][:, 0]
    drop = before["probability"][:, 0] - after
    return {
        "applicants_judged": int(judged.sum()),
        "lowered_share": round(float((drop[judged] > 0).mean()), 4),
        "median_drop": round(float(np.median(drop[judged])), 4),
    }
