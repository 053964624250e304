"""Drift runs as stored: written by a pass, read by the routes and by /metrics."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.db.models import DriftRun, Tenant, utcnow


@dataclass(frozen=True)
class RunView:
    """A stored run with its tenant's name ("all" for every tenant together)."""

    id: int
    pass_id: str
    tenant: str
    model_version: str | None
    reference_size: int
    current_size: int
    drift_share: float
    prediction_drift_score: float
    embedding_drift_score: float
    override_rate: float | None
    drifted: bool
    columns: dict
    seconds: float
    created_at: datetime


def _view(run: DriftRun, tenant: str | None) -> RunView:
    return RunView(
        id=run.id,
        pass_id=run.pass_id,
        tenant=tenant or "all",
        model_version=run.model_version,
        reference_size=run.reference_size,
        current_size=run.current_size,
        drift_share=run.drift_share,
        prediction_drift_score=run.prediction_drift_score,
        embedding_drift_score=run.embedding_drift_score,
        override_rate=run.override_rate,
        drifted=run.drifted,
        columns=run.columns,
        seconds=run.seconds,
        created_at=run.created_at,
    )


def _with_tenant():
    return select(DriftRun, Tenant.name).outerjoin(Tenant, Tenant.id == DriftRun.tenant_id)


def store_run(session: Session, run: DriftRun) -> RunView:
    session.add(run)
    session.commit()
    tenant = session.get(Tenant, run.tenant_id) if run.tenant_id is not None else None
    return _view(run, tenant.name if tenant else None)


def latest_pass(session: Session) -> list[RunView]:
    """The runs of the newest pass: all tenants first, then each tenant by name."""
    newest = session.scalar(select(DriftRun.pass_id).order_by(DriftRun.id.desc()).limit(1))
    if newest is None:
        return []
    rows = session.execute(_with_tenant().where(DriftRun.pass_id == newest)).all()
    return sorted(
        (_view(run, name) for run, name in rows), key=lambda v: (v.tenant != "all", v.tenant)
    )


def latest_created_at(session: Session) -> datetime | None:
    return session.scalar(select(func.max(DriftRun.created_at)))


def report_file(session: Session, run_id: int) -> str | None:
    return session.scalar(select(DriftRun.report_file).where(DriftRun.id == run_id))


def prune_reports(session: Session, reports_dir: Path, days: float) -> int:
    """Delete the report files of runs older than `days`; the runs stay. Returns how many."""
    cutoff = utcnow() - timedelta(days=days)
    names = session.scalars(select(DriftRun.report_file).where(DriftRun.created_at < cutoff))
    deleted = 0
    for name in names:
        path = reports_dir / name
        if path.is_file():
            path.unlink()
            deleted += 1
    return deleted
