"""Drift of a tenant's credit applicants: the population stability index of each feature and
of the model's probability of default, the tenant's most recent scorings against the
training split's deciles that `export credit` wrote beside the model
(contracts.credit.CREDIT_REFERENCE_FILE); levels at PSI_WARNING and PSI_CRITICAL."""

import json
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.credit import FEATURES, bin_shares, psi, psi_level
from orchestrator.db.models import CreditScore
from orchestrator.errors import Conflict

MIN_WINDOW = 100  # fewer scorings' deciles say nothing either way


def load_reference(path: Path) -> dict:
    if not path.is_file():
        raise Conflict(
            f"no drift reference at {path}: `python -m export credit` writes it",
            code="no_reference",
        )
    return json.loads(path.read_text())


def drift_report(session: Session, tenant_id: int, window: int, reference: dict) -> dict:
    rows = session.execute(
        select(CreditScore.applicant, CreditScore.probability_of_default)
        .where(CreditScore.tenant_id == tenant_id)
        .order_by(CreditScore.id.desc())
        .limit(window)
    ).all()
    if len(rows) < MIN_WINDOW:
        raise Conflict(
            f"{len(rows)} scorings: drift needs at least {MIN_WINDOW}",
            code="window_too_small",
        )
    columns = {name: np.array([r.applicant[name] for r in rows]) for name in FEATURES}
    columns["probability"] = np.array([r.probability_of_default for r in rows])
    signals = {}
    for name, values in columns.items():
        expected = reference[name]
        value = psi(np.array(expected["shares"]), bin_shares(values, np.array(expected["edges"])))
        signals[name] = {"psi": round(value, 4), "level": psi_level(value)}
    levels = [s["level"] for s in signals.values()]
    worst = "critical" if "critical" in levels else "warning" if "warning" in levels else "ok"
    return {
        "window": len(rows),
        "level": worst,
        "drifted": sorted(n for n, s in signals.items() if s["level"] != "ok"),
        "signals": signals,
    }
