"""Drift of a tenant's credit applicants: the population stability index of each feature and
of the model's probability of default, the tenant's most recent scorings against the
training split's deciles that `export credit` wrote beside the production version
(contracts.credit.credit_reference_file); levels at PSI_WARNING and PSI_CRITICAL.

Computed when asked (GET /v1/credit/drift) and by the worker's periodic drift pass
(credit_pass), both of which set the support_credit_psi gauges that the alerts read."""

import asyncio
import json
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from contracts.credit import (
    CREDIT_ENSEMBLE,
    FEATURES,
    bin_shares,
    credit_reference_file,
    psi,
    psi_level,
)
from orchestrator.db.models import CreditScore, Tenant
from orchestrator.errors import Conflict

WINDOW = 1000  # the periodic pass's window: each tenant's latest scorings

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


def set_gauges(gauge, tenant: str, report: dict) -> None:
    for feature, signal in report["signals"].items():
        gauge.labels(tenant=tenant, feature=feature).set(signal["psi"])


def credit_pass(
    session: Session, repository: Path, production: int, gauge, window: int = WINDOW
) -> dict[str, dict]:
    """Every tenant with at least MIN_WINDOW scorings against production's reference, its
    gauges set; the reports by tenant name. Nothing when no reference is installed."""
    path = repository / credit_reference_file(production)
    if not path.is_file():
        return {}
    reference = load_reference(path)
    tenants = session.execute(
        select(Tenant.id, Tenant.name).where(
            select(CreditScore.id).where(CreditScore.tenant_id == Tenant.id).exists()
        )
    ).all()
    reports = {}
    for tenant_id, name in tenants:
        try:
            reports[name] = drift_report(session, tenant_id, window, reference)
        except Conflict:  # too few scorings yet
            continue
        set_gauges(gauge, name, reports[name])
    return reports


async def run_credit_pass(sessions: sessionmaker[Session], versions, repository: Path, gauge):
    """credit_pass in a thread, against the production version `versions` records."""
    production = (await versions.routing(CREDIT_ENSEMBLE)).production

    def run() -> dict[str, dict]:
        with sessions() as session:
            return credit_pass(session, repository, production, gauge)

    return await asyncio.to_thread(run)
