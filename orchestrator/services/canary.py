"""The canary's watch: each model call's outcome per model version, and the automatic abort of
a canary that does worse than production.

Triage (services/triage.py), the x-ray (services/xray_routing.py) and credit scoring
(services/credit_routing.py) record every Triton call: which version, whether it answered
and in how many seconds. A canary call that fails is answered by production instead, so
callers do not see the canary's failures; the watch does.
Every `check_s` the watch compares the canary with production on what it recorded since the
canary started (the canary row's last change), once each has at least `min_calls` calls:

- errors: the canary's error rate above production's by more than `max_error_increase`;
- latency: the canary's median seconds per call above `max_latency_ratio` times production's
  (and slower by more than `min_latency_gap_s`);
- overrides: where both versions answered at least `min_tickets` tickets (x-ray: diagnoses;
  credit: applicants) since the canary started, the share of those the agents corrected
  (intent; x-ray: the clinicians' confirmed label differs; credit: approved, and reported
  defaulted), above production's by more than `max_override_increase`.

Any of these rolls the canary back (versions.rollback), audited as `canary_abort` by the
orchestrator itself (no key) with the reasons, and counted in
`support_canary_aborts_total{model}`, which deploy/prometheus alerts on. Each orchestrator
process judges the calls it made; the first to abort wins, the others find no canary left.
"""

import asyncio
import logging
import statistics
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from contracts.credit import CREDIT_ENSEMBLE
from contracts.xray import XRAY_ENSEMBLE
from orchestrator.db.models import CreditScore, Diagnosis, Feedback, ModelVersion, Ticket
from orchestrator.errors import Conflict
from orchestrator.metrics import Metrics
from orchestrator.services import versions
from orchestrator.services.versions import VersionState, VersionStore
from orchestrator.triton.triage_client import TritonUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CanaryPolicy:
    min_calls: int = 50  # Triton calls of each version since the canary started
    max_error_increase: float = 0.05  # error rate points above production's
    max_latency_ratio: float = 2.0  # median seconds per call, times production's
    min_latency_gap_s: float = 0.005  # and slower by this much: sub-millisecond jitter is not
    min_tickets: int = 20  # triaged tickets of each version before overrides are judged
    max_override_increase: float = 0.15  # corrected share above production's
    window: int = 2000  # calls kept per version


def policy_of(settings) -> CanaryPolicy:
    """The policy of OrchestratorSettings' canary_* fields."""
    return CanaryPolicy(
        min_calls=settings.canary_min_calls,
        max_error_increase=settings.canary_max_error_increase,
        max_latency_ratio=settings.canary_max_latency_ratio,
        min_tickets=settings.canary_min_tickets,
        max_override_increase=settings.canary_max_override_increase,
    )


def watch_of(sessions, versions_store: VersionStore, metrics: Metrics, settings) -> "CanaryWatch":
    return CanaryWatch(
        sessions, versions_store, metrics, policy_of(settings), settings.canary_check_s
    )


@dataclass(frozen=True)
class Call:
    at: float  # time.time()
    seconds: float | None  # None: the call failed


@dataclass(frozen=True)
class Evidence:
    """What one version did since the canary started."""

    calls: int
    errors: int
    median_s: float | None
    tickets: int = 0
    overridden: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0

    @property
    def override_rate(self) -> float | None:
        return self.overridden / self.tickets if self.tickets else None


def evidence(calls: list[Call], tickets: int = 0, overridden: int = 0) -> Evidence:
    answered = [c.seconds for c in calls if c.seconds is not None]
    median = statistics.median(answered) if answered else None
    return Evidence(len(calls), len(calls) - len(answered), median, tickets, overridden)


def reasons_to_abort(production: Evidence, canary: Evidence, policy: CanaryPolicy) -> list[str]:
    """Why the canary should be rolled back; empty when it may stay (or it is too early)."""
    if min(production.calls, canary.calls) < policy.min_calls:
        return []
    reasons = []
    if canary.error_rate > production.error_rate + policy.max_error_increase:
        reasons.append(
            f"error rate {canary.error_rate:.1%} against production's "
            f"{production.error_rate:.1%} ({canary.errors} of {canary.calls} calls)"
        )
    if (
        canary.median_s is not None
        and production.median_s is not None
        and canary.median_s > policy.max_latency_ratio * production.median_s
        and canary.median_s - production.median_s > policy.min_latency_gap_s
    ):
        reasons.append(
            f"median latency {1000 * canary.median_s:.1f} ms per call against production's "
            f"{1000 * production.median_s:.1f} ms (at most {policy.max_latency_ratio:g}x)"
        )
    if min(production.tickets, canary.tickets) >= policy.min_tickets:
        canary_rate, production_rate = canary.override_rate, production.override_rate
        if canary_rate > production_rate + policy.max_override_increase:
            reasons.append(
                f"agents corrected {canary_rate:.1%} of its tickets against production's "
                f"{production_rate:.1%} ({canary.overridden} of {canary.tickets})"
            )
    return reasons


async def watched_call(call, version: int, production: int, model: str, watch):
    """`call(version)`, its outcome recorded by `watch` (None: not watched). A version other
    than production that cannot answer (TritonUnavailable) is answered by production: the
    canary's failure, not the caller's; the watch sees it."""
    started = time.perf_counter()
    try:
        answer = await call(version)
    except TritonUnavailable:
        if watch is not None:
            watch.record(model, version, None)
        if version == production:
            raise
        return await call(production)
    if watch is not None:
        watch.record(model, version, time.perf_counter() - started)
    return answer


class CanaryWatch:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        versions_store: VersionStore,
        metrics: Metrics,
        policy: CanaryPolicy,
        check_s: float,
    ):
        self.sessions, self.versions, self.metrics = sessions, versions_store, metrics
        self.policy, self.check_s = policy, check_s
        self._calls: dict[str, dict[int, deque[Call]]] = defaultdict(dict)

    def record(self, model: str, version: int, seconds: float | None) -> None:
        """One Triton call of `version`: its seconds, or None when it failed."""
        calls = self._calls[model]
        if not calls:  # the counter at 0 from the start: the alert's increase() sees the abort
            self.metrics.canary_aborts.labels(model)
        if version not in calls:
            calls[version] = deque(maxlen=self.policy.window)
        calls[version].append(Call(time.time(), seconds))

    async def run(self) -> None:
        """Check every `check_s` seconds until cancelled (never when 0); a failed check is
        logged, not fatal."""
        if self.check_s <= 0:
            return
        while True:
            await asyncio.sleep(self.check_s)
            try:
                await self.check()
            except Exception:  # a database hiccup must not end the watch
                log.exception("the canary check failed; next try in %g s", self.check_s)

    async def check(self) -> dict[str, list[str]]:
        """Judge every watched model's canary now; the aborted ones with their reasons."""
        aborted = {}
        for model in list(self._calls):
            reasons = await asyncio.to_thread(self._judge_and_abort, model)
            if reasons:
                aborted[model] = reasons
                self.versions.invalidate()
        return aborted

    # ---- in a thread: the database ---------------------------------------------------------
    def _judge_and_abort(self, model: str) -> list[str]:
        with self.sessions() as session:
            rows = versions.model_rows(session, model)
            canary = next((r for r in rows if r.state == VersionState.canary), None)
            production = next((r for r in rows if r.state == VersionState.production), None)
            if canary is None:
                return []
            since = canary.updated_at  # UTC-aware on every database (db.models.UTCDateTime)
            production_version = production.version if production else versions.IMPLICIT
            found = {
                version: self._evidence(session, model, version, since)
                for version in (production_version, canary.version)
            }
            reasons = reasons_to_abort(
                found[production_version], found[canary.version], self.policy
            )
            if reasons:
                self._abort(session, model, canary, reasons, found)
            return reasons

    def _evidence(self, session: Session, model: str, version: int, since: datetime) -> Evidence:
        start = since.timestamp()
        calls = [c for c in self._calls[model].get(version, ()) if c.at >= start]
        counted = EVIDENCE.get(model, overrides)
        tickets, overridden = counted(session, str(version), since)
        return evidence(calls, tickets, overridden)

    def _abort(self, session, model: str, canary: ModelVersion, reasons, found) -> None:
        version = canary.version

        def move(rows):
            current = next((r for r in rows if r.state == VersionState.canary), None)
            if current is None or current.version != version:
                raise Conflict(f"version {version} of {model!r} is no longer the canary")
            return versions.rollback(rows, model)

        asked = {
            "model": model,
            "version": version,
            "reasons": reasons,
            "evidence": {str(v): e.__dict__ for v, e in found.items()},
        }
        session.rollback()  # the reads above: change() takes the rows for update itself
        try:
            versions.change(
                session=session, model=model, caller=None, action="canary_abort",
                asked=asked, move=move,
            )  # fmt: skip
        except Conflict:
            return  # another process (or an admin) moved it first
        self.metrics.canary_aborts.labels(model).inc()
        log.warning("canary %s of %r rolled back automatically: %s", version, model, reasons)


def overrides(session: Session, version: str, since: datetime) -> tuple[int, int]:
    """(tickets triaged by `version` since `since`, those whose intent an agent corrected)."""
    triaged = select(Ticket.id).where(Ticket.model_version == version, Ticket.created_at >= since)
    tickets = session.scalar(select(func.count()).select_from(triaged.subquery())) or 0
    corrected = session.scalar(
        select(func.count(func.distinct(Feedback.ticket_id))).where(
            Feedback.field == "intent", Feedback.ticket_id.in_(triaged)
        )
    )
    return tickets, corrected or 0


def diagnosis_overrides(session: Session, version: str, since: datetime) -> tuple[int, int]:
    """(diagnoses by x-ray `version` since `since`, those a clinician confirmed otherwise)."""
    answered = (Diagnosis.model_version == version, Diagnosis.created_at >= since)
    count = select(func.count()).select_from(Diagnosis)
    diagnoses = session.scalar(count.where(*answered)) or 0
    overridden = session.scalar(
        count.where(
            *answered,
            Diagnosis.confirmed_label.is_not(None),
            Diagnosis.confirmed_label != Diagnosis.label,
        )
    )
    return diagnoses, overridden or 0


def credit_defaults(session: Session, version: str, since: datetime) -> tuple[int, int]:
    """(applicants scored by credit `version` since `since`, those approved that the lender
    reported defaulted): the credit model's wrong answers, as overrides are triage's."""
    scored = (CreditScore.model_version == version, CreditScore.created_at >= since)
    count = select(func.count()).select_from(CreditScore)
    applicants = session.scalar(count.where(*scored)) or 0
    defaulted = session.scalar(
        count.where(*scored, CreditScore.decision == "approve", CreditScore.defaulted.is_(True))
    )
    return applicants, defaulted or 0


# Each watched model's evidence of wrong answers (triage's: agents' intent corrections)
EVIDENCE = {XRAY_ENSEMBLE: diagnosis_overrides, CREDIT_ENSEMBLE: credit_defaults}
