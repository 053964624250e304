"""The drift statistics on synthetic samples (no Triton): the categorical test, the run's
numbers, the verdicts, the language guess, and which alerts the gauges fire."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from evidently.legacy.calculations.stattests.tvd_stattest import tvd_test as evidently_tvd
from evidently.legacy.core import ColumnType

from orchestrator.metrics import Metrics
from orchestrator.services.drift.categorical import tvd_test
from orchestrator.services.drift.monitor import is_drifted
from orchestrator.services.drift.reference import Observed
from orchestrator.services.drift.stats import Thresholds, compare
from orchestrator.services.language import detect_language
from orchestrator.settings import DriftSettings
from tests.utils.drift import firing_drift_alerts

INTENTS = [f"intent_{i}" for i in range(77)]
THRESHOLDS = Thresholds(p_value=0.01, embedding_mmd=0.015)


def sample(rng, size: int, drifted: bool = False) -> Observed:
    """Banking-like texts over all intents, or German cooking questions over a few intents,
    less confident and elsewhere in embedding space."""
    if drifted:
        texts = ["Wie lange muss ich den Kuchen im Ofen backen?"] * size
        intents, confidence, shift = rng.choice(INTENTS[:5], size), rng.beta(2, 3, size), 0.3
    else:
        base = "I am still waiting on my card, what should I do about it?"
        texts = [base[: rng.integers(15, len(base))] for _ in range(size)]
        intents, confidence, shift = rng.choice(INTENTS, size), rng.beta(5, 1.5, size), 0.0
    embeddings = rng.normal(shift, 1, (size, 16)) * 0.05
    return Observed(
        texts, list(intents), confidence.astype(np.float32), embeddings.astype(np.float32)
    )


@pytest.mark.parametrize("size", [50, 500])
def test_our_tvd_test_agrees_with_evidentlys_on_one_mix(size):
    rng = np.random.default_rng(size)
    reference, current = pd.Series(rng.choice(INTENTS, 500)), pd.Series(rng.choice(INTENTS, size))
    ours = tvd_test(reference, current)
    theirs = evidently_tvd(reference, current, ColumnType.Categorical, 0.01).drift_score
    assert ours.p_value == pytest.approx(theirs, abs=0.05)
    assert ours.p_value > 0.05 and abs(ours.excess) < 0.05
    assert ours.distance > 0.15  # what chance alone puts between two samples of 77 intents


def test_tvd_test_sees_a_new_mix_with_unseen_categories():
    rng = np.random.default_rng(1)
    reference = pd.Series(rng.choice(INTENTS, 500))
    current = pd.Series(rng.choice(["de", "es", *INTENTS[:3]], 60))
    result = tvd_test(reference, current)
    assert result.distance > 0.9 and result.p_value < 0.01
    assert result.excess > 0.4  # beyond the 0.5 that chance gives samples of this size


def test_quiet_and_drifted_samples(tmp_path):
    rng = np.random.default_rng(7)
    reference = sample(rng, 500)
    quiet = compare(sample(rng, 200), reference, THRESHOLDS, tmp_path / "quiet.html")
    drifted = compare(sample(rng, 60, True), reference, THRESHOLDS, tmp_path / "drifted.html")
    assert quiet.drift_share == 0 and quiet.prediction_drift_score < 0.05
    assert not any(c["drifted"] for c in quiet.columns.values())
    assert drifted.drift_share == 1 and drifted.prediction_drift_score > 0.5
    assert set(drifted.columns) == {"text_length", "language", "intent", "confidence", "embedding"}
    assert drifted.columns["intent"]["method"] == "tvd_permutation"  # ours, not chi-square
    html = (tmp_path / "drifted.html").read_text()
    assert html.lstrip().startswith("<!DOCTYPE html>") and "drawDashboard" in html
    settings = DriftSettings()
    assert is_drifted(drifted, settings) and not is_drifted(quiet, settings)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("I am still waiting on my card?", "en"),
        ("Wie lange muss ich den Kuchen backen?", "de"),
        ("¿Cómo puedo cambiar mi tarjeta?", "es"),
        ("Comment puis-je changer ma carte ?", "fr"),
        ("card arrival", "unknown"),  # no stop word
        ("Где моя карта?", "other"),
        ("", "unknown"),
    ],
)
def test_language_guess(text, language):
    assert detect_language(text) == language


def test_the_minimum_sample_cannot_exceed_the_window():
    with pytest.raises(ValueError, match="min_sample"):
        DriftSettings(window=40, min_sample=50)


def test_the_gauges_fire_the_drift_alerts_as_promtool_does():
    """The cases of deploy/prometheus/alerts.test.yml, evaluated by the helper the real-stack
    test uses."""
    metrics = Metrics()
    metrics.drift.show(
        [
            SimpleNamespace(
                tenant="shifted", drift_share=0.8, prediction_drift_score=0.25, override_rate=0.15
            ),
            SimpleNamespace(
                tenant="calm", drift_share=0.2, prediction_drift_score=0.04, override_rate=None
            ),
        ]
    )
    assert firing_drift_alerts(metrics.registry) == {
        ("SupportInputDrift", "warning", "shifted"),
        ("SupportInputDrift", "critical", "shifted"),
        ("SupportPredictionDrift", "warning", "shifted"),
        ("SupportOverrideRateHigh", "warning", "shifted"),
    }
