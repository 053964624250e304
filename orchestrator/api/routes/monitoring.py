"""Drift monitoring (platform admins: a pass covers every tenant): the latest pass's summary
and each run's Evidently report."""

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from orchestrator.api.deps import SessionDep, require
from orchestrator.api.params import IdPath
from orchestrator.errors import NotFound
from orchestrator.schemas.monitoring import DriftSummary
from orchestrator.services.drift import runs
from orchestrator.services.drift.monitor import summary

router = APIRouter(prefix="/v1/monitoring", tags=["monitoring"], dependencies=[require("platform")])


@router.get("/drift", response_model=DriftSummary)
def latest_drift(request: Request, session: SessionDep) -> DriftSummary:
    """The newest drift pass: one run for all tenants together and one per tenant that had
    enough tickets; `pass_id` is null before the first pass."""
    return summary(runs.latest_pass(session), request.app.state.drift_settings.min_sample)


@router.get("/reports/{report_id}", response_class=FileResponse)
async def drift_report(report_id: IdPath, request: Request) -> FileResponse:
    """A run's Evidently report (self-contained HTML: its scripts and fonts are inline).

    It holds lengths, language codes, intents and confidences, never a ticket's text.
    """

    def find() -> str | None:
        with request.app.state.sessions() as session:
            return runs.report_file(session, report_id)

    name = await run_in_threadpool(find)
    if name is None:
        raise NotFound(f"no drift report {report_id}", param="report_id")
    path = request.app.state.drift_settings.reports_dir / name
    if not path.is_file():
        raise NotFound(f"drift report {report_id} is no longer on disk", param="report_id")
    return FileResponse(path, media_type="text/html; charset=utf-8")
