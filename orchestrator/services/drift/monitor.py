"""One drift pass: every scope with enough tickets compared with the training reference.

Run by the worker every DRIFT_INTERVAL_S and by `python -m orchestrator drift`. Database work
and Evidently's statistics run in threads, so that a worker's event loop keeps claiming jobs;
Triton calls (the reference once per model version, the window's embeddings) are awaited.
"""

import asyncio
import logging
import time
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.db.models import DriftRun
from orchestrator.metrics import DriftGauges
from orchestrator.schemas.monitoring import DriftRunPublic, DriftSummary, Signal, SkippedScope
from orchestrator.services.drift import runs
from orchestrator.services.drift.reference import Observed, load_reference
from orchestrator.services.drift.window import Scope, Window, load_window, scopes
from orchestrator.settings import DriftSettings
from orchestrator.triton.embed_client import EmbeddingClient
from orchestrator.triton.triage_client import TriageClient

if TYPE_CHECKING:  # Evidently takes seconds to import: only a pass that compares loads it
    from orchestrator.services.drift.stats import DriftStats

log = logging.getLogger(__name__)
REPORTS_ROUTE = "/v1/monitoring/reports"


@dataclass(frozen=True)
class PassResult:
    pass_id: str | None  # None: nothing had enough tickets
    runs: list[runs.RunView]
    skipped: list[Scope]
    min_sample: int

    def summary(self) -> DriftSummary:
        return summary(self.runs, self.min_sample, self.skipped, self.pass_id)


def split_scopes(found: list[Scope], min_sample: int) -> tuple[list[Scope], list[Scope]]:
    """(compared, skipped): a scope with fewer predicted tickets than `min_sample` is skipped:
    on a handful of tickets the tests can tell nothing, and one odd ticket moves the mix."""
    return (
        [s for s in found if s.available >= min_sample],
        [s for s in found if s.available < min_sample],
    )


def is_drifted(stats: "DriftStats", settings: DriftSettings) -> bool:
    return (
        stats.drift_share >= settings.warning_share
        or stats.prediction_drift_score >= settings.warning_prediction_score
    )


class DriftMonitor:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        triage: TriageClient,
        embedder: EmbeddingClient,
        settings: DriftSettings,
        gauges: DriftGauges | None = None,
    ):
        self.sessions, self.triage, self.embedder = sessions, triage, embedder
        self.settings, self.gauges = settings, gauges

    async def run_pass(self) -> PassResult:
        """Compare every scope that has enough tickets; the gauges show this pass after."""
        found = await asyncio.to_thread(self.in_session, scopes, hours=self.settings.window_hours)
        compared, skipped = split_scopes(found, self.settings.min_sample)
        if not compared:
            log.info("drift pass: no scope has %d triaged tickets yet", self.settings.min_sample)
            return PassResult(None, [], skipped, self.settings.min_sample)
        reference = await load_reference(
            self.settings.reference_csv,
            self.settings.reference_size,
            self.settings.cache_dir,
            self.triage,
            self.embedder,
        )
        pass_id, done, embedded = uuid.uuid4().hex, [], {}
        for scope in compared:
            done.append(await self._run_scope(pass_id, scope, reference, embedded))
        if self.gauges is not None:
            self.gauges.show(done)
        reports, days = self.settings.reports_dir, self.settings.report_days
        await asyncio.to_thread(self.in_session, runs.prune_reports, reports, days)
        return PassResult(pass_id, done, skipped, self.settings.min_sample)

    async def _run_scope(
        self, pass_id: str, scope: Scope, reference: Observed, embedded: dict[str, np.ndarray]
    ) -> runs.RunView:
        """Compare one scope's window with the reference; store the run and its report."""
        from orchestrator.services.drift.stats import Thresholds, compare

        started = time.perf_counter()
        window, current = await self._window(scope, embedded)
        report = f"{pass_id}-{scope.tenant_id or 'all'}.html"
        thresholds = Thresholds(self.settings.column_p_value, self.settings.embedding_mmd)
        stats = await asyncio.to_thread(
            compare, current, reference, thresholds, self.settings.reports_dir / report
        )
        row = DriftRun(
            pass_id=pass_id,
            tenant_id=scope.tenant_id,
            model_version=reference.model_version,
            reference_size=len(reference),
            current_size=window.size,
            drift_share=stats.drift_share,
            prediction_drift_score=stats.prediction_drift_score,
            embedding_drift_score=stats.embedding_drift_score,
            override_rate=window.override_rate,
            drifted=is_drifted(stats, self.settings),
            columns=stats.columns,
            report_file=report,
            seconds=round(time.perf_counter() - started, 3),
        )
        view = await asyncio.to_thread(self.in_session, runs.store_run, row)
        log.info(
            "drift %s: share %.2f, prediction %.3f, %d tickets%s",
            view.tenant,
            view.drift_share,
            view.prediction_drift_score,
            view.current_size,
            " (DRIFTED)" if view.drifted else "",
        )
        return view

    async def _window(
        self, scope: Scope, embedded: dict[str, np.ndarray]
    ) -> tuple[Window, Observed]:
        """The scope's window, and what the model makes of it: its stored predictions, and the
        embeddings asked of Triton now (they are not stored with tickets), once per text and
        pass: the tenants' windows mostly repeat the texts of all tenants' window."""
        window: Window = await asyncio.to_thread(
            self.in_session,
            load_window,
            scope,
            size=self.settings.window,
            hours=self.settings.window_hours,
        )
        texts = [t.text for t in window.tickets]
        return window, Observed(
            texts=texts,
            intents=[t.intent for t in window.tickets],
            confidences=np.array([t.confidence for t in window.tickets], dtype=np.float32),
            embeddings=await self._embed(texts, embedded),
        )

    async def _embed(self, texts: list[str], embedded: dict[str, np.ndarray]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in embedded))
        if missing:
            embedded.update(zip(missing, await self.embedder.embed(missing), strict=True))
        return np.stack([embedded[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)

    def in_session(self, function, *args, **kwargs):
        """`function(session, *args, **kwargs)` in a session of its own (call it in a thread)."""
        with self.sessions() as session:
            return function(session, *args, **kwargs)


def public(run: runs.RunView) -> DriftRunPublic:
    fields = asdict(run)
    del fields["pass_id"]  # internal: which pass wrote the run
    columns = fields.pop("columns")
    return DriftRunPublic(
        **fields,
        signals={name: Signal(**signal) for name, signal in columns.items()},
        report_url=f"{REPORTS_ROUTE}/{run.id}",
    )


def summary(
    done: list[runs.RunView],
    min_sample: int,
    skipped: list[Scope] = (),
    pass_id: str | None = None,
) -> DriftSummary:
    return DriftSummary(
        pass_id=pass_id or (done[0].pass_id if done else None),
        created_at=min((r.created_at for r in done), default=None),
        min_sample=min_sample,
        runs=[public(r) for r in done],
        skipped=[SkippedScope(tenant=s.name, tickets=s.available) for s in skipped],
    )
