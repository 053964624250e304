"""Drift of the x-ray traffic: a tenant's recent diagnoses against what the model was made on.

Signals, each a two-sample Kolmogorov-Smirnov test against the reference `export xray` wrote
beside the model (contracts.xray.XRAY_REFERENCE_FILE):
- brightness and contrast: the prepared 28 x 28 image's pixel mean and standard deviation,
  against every training image's (another scanner, exposure or cropping moves them);
- the probability of pneumonia, against the served file's on the validation split (a shift in
  the cases seen, or images the model reads differently).
A signal drifts when its p-value is under P_VALUE. Beside them: the share answered pneumonia,
and the override rate, the share of confirmed diagnoses whose confirmed label differs.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import ks_2samp
from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.db.models import Diagnosis, utcnow
from orchestrator.errors import Conflict

SIGNALS = ("image_mean", "image_std", "probability")
P_VALUE = 0.01
MIN_WINDOW = 30  # fewer diagnoses say nothing either way


@dataclass(frozen=True)
class Reference:
    samples: dict[str, np.ndarray]  # per signal

    @classmethod
    def load(cls, path: Path) -> "Reference":
        if not path.is_file():
            raise Conflict(
                f"no drift reference at {path}: `python -m export xray` writes it",
                code="no_reference",
            )
        raw = json.loads(path.read_text())
        return cls({name: np.asarray(raw[name], dtype=np.float64) for name in SIGNALS})


def drift_report(session: Session, tenant_id: int, window: int, reference: Reference) -> dict:
    """The tenant's `window` most recent unexpired diagnoses against the reference."""
    rows = session.execute(
        select(
            Diagnosis.image_mean,
            Diagnosis.image_std,
            Diagnosis.probability,
            Diagnosis.label,
            Diagnosis.confirmed_label,
        )
        .where(Diagnosis.tenant_id == tenant_id, Diagnosis.expires_at > utcnow())
        .order_by(Diagnosis.id.desc())
        .limit(window)
    ).all()
    if len(rows) < MIN_WINDOW:
        raise Conflict(
            f"{len(rows)} recent diagnoses; drift needs at least {MIN_WINDOW}",
            code="window_too_small",
        )
    columns = {name: [getattr(row, name) for row in rows] for name in SIGNALS}
    signals = {}
    for name in SIGNALS:
        test = ks_2samp(np.asarray(columns[name], dtype=np.float64), reference.samples[name])
        signals[name] = {
            "method": "ks",
            "statistic": round(float(test.statistic), 4),
            "p_value": float(test.pvalue),
            "window_median": round(float(np.median(columns[name])), 4),
            "reference_median": round(float(np.median(reference.samples[name])), 4),
            "drifted": bool(test.pvalue < P_VALUE),
        }
    confirmed = [(label, truth) for *_, label, truth in rows if truth is not None]
    return {
        "window": len(rows),
        "p_value_threshold": P_VALUE,
        "drifted": any(signal["drifted"] for signal in signals.values()),
        "signals": signals,
        "pneumonia_share": round(sum(r.label == "pneumonia" for r in rows) / len(rows), 4),
        "confirmed": len(confirmed),
        "override_rate": (
            round(sum(label != truth for label, truth in confirmed) / len(confirmed), 4)
            if confirmed
            else None
        ),
    }
