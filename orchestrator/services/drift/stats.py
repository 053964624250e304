"""The statistics of one drift run, computed with Evidently, and the HTML report it renders.

Signals, each compared between the window and the reference:

- text length and confidence: Evidently's two-sample Kolmogorov-Smirnov test;
- language and intent mix: total variation distance with a permutation test (categorical.py:
  Evidently's default for categories flags a 77-intent mix as drifted when nothing is);
- the encoder's embeddings: Evidently's MMD method (what its EmbeddingsDrift metric runs with
  `mmd()`): the squared maximum mean discrepancy under a Gaussian kernel, 0 when the two samples
  come from one distribution. Its classifier method (the default) told a clear shift from none
  no better than chance on 60 texts against 500 (measured: AUC 0.52 to 0.59 either way).

The drift share is the share of these five signals that drifted (a column by its p-value, the
embeddings by their MMD). The prediction drift score is how far the intent mix or the confidence
histogram (ten bins) moved: the larger total variation distance beyond what chance gives on
samples of these sizes (categorical.TVDTest.excess), 0 for none, up to 1.

The HTML report is Evidently's DataDriftPreset over the four columns. The embedding and
prediction scores are in the run's summary, not in the report: Evidently's EmbeddingsDrift
metric draws a t-SNE map for the report, 20 s per sample of 560 texts on 2 cores (measured),
so the monitor calls its method directly instead.
"""

import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's telemetry (its UI service only)
os.environ.setdefault("EVIDENTLY_DISABLE_TELEMETRY", "1")

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics.embeddings import MMDDriftMethod
from evidently.presets import DataDriftPreset

from orchestrator.services.drift.categorical import NAME as TVD_PERMUTATION
from orchestrator.services.drift.categorical import tvd_test
from orchestrator.services.drift.reference import Observed
from orchestrator.services.language import detect_language

COLUMNS = ("text_length", "language", "intent", "confidence")
METHODS = {"language": TVD_PERMUTATION, "intent": TVD_PERMUTATION}  # numbers: K-S
EMBEDDING = "embedding"
CONFIDENCE_BINS = np.linspace(0.0, 1.0, 11)


@dataclass(frozen=True)
class Thresholds:
    p_value: float  # a column drifts below it
    embedding_mmd: float  # the embeddings drift above it


@dataclass(frozen=True)
class DriftStats:
    drift_share: float
    prediction_drift_score: float
    embedding_drift_score: float  # MMD²
    columns: dict[str, dict]  # per signal: method, score, threshold, drifted


def frame(observed: Observed) -> pd.DataFrame:
    """The four columns Evidently compares, one row per text."""
    return pd.DataFrame(
        {
            "text_length": [len(t) for t in observed.texts],
            "language": [detect_language(t) for t in observed.texts],
            "intent": list(observed.intents),
            "confidence": observed.confidences.astype(float),
        }
    )


def _definition() -> DataDefinition:
    return DataDefinition(
        numerical_columns=["text_length", "confidence"], categorical_columns=["language", "intent"]
    )


def compare(
    current: Observed, reference: Observed, thresholds: Thresholds, report: Path
) -> DriftStats:
    """Run Evidently on the two samples, save its HTML report at `report`, return the numbers."""
    ref_frame, cur_frame = frame(reference), frame(current)
    preset = DataDriftPreset(
        columns=list(COLUMNS), per_column_method=METHODS, threshold=thresholds.p_value
    )
    snapshot = Report([preset]).run(
        Dataset.from_pandas(cur_frame, _definition()), Dataset.from_pandas(ref_frame, _definition())
    )
    report.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(report))
    columns = column_results(snapshot.dict()["metrics"])
    mmd = embedding_mmd(current.embeddings, reference.embeddings)
    columns[EMBEDDING] = {
        "method": "MMD",
        "score": mmd,
        "threshold": thresholds.embedding_mmd,
        "drifted": mmd > thresholds.embedding_mmd,
    }
    return DriftStats(
        drift_share=sum(c["drifted"] for c in columns.values()) / len(columns),
        prediction_drift_score=prediction_drift(cur_frame, ref_frame),
        embedding_drift_score=mmd,
        columns=columns,
    )


def column_results(metrics: list[dict]) -> dict[str, dict]:
    """Each column's test from Evidently's results (snapshot.dict()["metrics"]): p-values."""
    columns = {}
    for metric in metrics:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            p_value, threshold = float(metric["value"]), float(config["threshold"])
            columns[config["column"]] = {
                "method": config["method"],
                "score": p_value,
                "threshold": threshold,
                "drifted": p_value < threshold,
            }
    return columns


def embedding_mmd(current: np.ndarray, reference: np.ndarray) -> float:
    """Evidently's MMD drift method on the two samples of embeddings."""
    mmd, _drifted, _name = MMDDriftMethod()(pd.DataFrame(current), pd.DataFrame(reference))
    return float(mmd)


def prediction_drift(current: pd.DataFrame, reference: pd.DataFrame) -> float:
    """The intent mix's or the confidence histogram's distance beyond chance, the larger."""
    bins = [
        pd.Series(np.digitize(f["confidence"], CONFIDENCE_BINS[1:-1])) for f in (reference, current)
    ]
    intent = tvd_test(reference["intent"], current["intent"]).excess
    confidence = tvd_test(*bins).excess
    return max(0.0, intent, confidence)
