"""The confidence bands' thresholds: chosen on held-out confidences so that "high" is right at
least 98 % of the time there and "low" holds what is right at most half the time; measured per
band; written and read back (export/bands.py, contracts/bands.py). No model: the choice is
arithmetic on confidences, tested on ones made to a known shape."""

import numpy as np

from contracts.bands import BandThresholds, bands_file
from export.bands import HIGH_AIM, LOW_ACCURACY, MARGIN, choose, measure


def _validation(seed: int = 0, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Confidences whose chance of being right equals the confidence (calibrated)."""
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0.05, 1.0, n)
    return confidence, rng.uniform(0, 1, n) < confidence


def test_high_is_right_at_least_the_aim_plus_the_margin_and_low_at_most_half_the_time():
    confidence, correct = _validation()
    thresholds = choose(confidence, correct)
    high = confidence >= thresholds.high_from
    low = confidence < thresholds.low_below
    assert correct[high].mean() >= HIGH_AIM + MARGIN
    assert correct[low].mean() <= LOW_ACCURACY
    assert 0 < thresholds.low_below < thresholds.high_from < 1
    # as wide as they may be: one step lower and "high" misses its aim
    lower = confidence >= np.max(confidence[confidence < thresholds.high_from])
    assert correct[lower].mean() < HIGH_AIM + MARGIN


def test_thresholds_hold_on_a_second_sample_of_the_same_shape():
    thresholds = choose(*_validation(seed=0))
    confidence, correct = _validation(seed=1)
    found = measure(confidence, correct, thresholds)
    assert found["high"]["accuracy"] >= HIGH_AIM
    assert sum(band["texts"] for band in found.values()) == len(confidence)
    assert found["low"]["accuracy"] < found["medium"]["accuracy"] < found["high"]["accuracy"]


def test_a_model_never_right_enough_has_no_high_band():
    confidence = np.linspace(0.1, 0.9, 100)
    thresholds = choose(confidence, np.zeros(100, dtype=bool))
    assert thresholds.band(0.9) == "low" and thresholds.high_from > 1


def test_bands_at_their_edges_and_through_the_file(tmp_path):
    thresholds = BandThresholds(high_from=0.8, low_below=0.4)
    found = [thresholds.band(c) for c in (0.8, 0.79, 0.4, 0.39)]
    assert found == ["high", "medium", "medium", "low"]
    path = tmp_path / bands_file(1)
    thresholds.write(path, {"test": {}})
    assert BandThresholds.read(path) == thresholds
