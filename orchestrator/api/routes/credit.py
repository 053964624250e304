"""Credit scoring: score applicants (1 to 1,000 a call), read and list the stored scorings, and
read or set the tenant's decision policy."""

from collections import Counter
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from contracts.credit import CREDIT_ENSEMBLE, Thresholds, credit_reference_file
from orchestrator.api.deps import AdminKey, SessionDep, require
from orchestrator.api.keycache import Caller
from orchestrator.api.params import IdPath
from orchestrator.db.models import Tenant
from orchestrator.errors import ApiError, unavailable
from orchestrator.schemas.credit import (
    Outcome,
    PolicyCosts,
    PolicyPublic,
    ScorePage,
    ScoreRecord,
    ScoreRequest,
    ScoreResponse,
)
from orchestrator.services import credit
from orchestrator.services.credit_drift import MIN_WINDOW, drift_report, load_reference, set_gauges
from orchestrator.services.credit_policy import policy_of, set_policy
from orchestrator.services.credit_routing import score_routed
from orchestrator.triton.triage_client import TritonRejected, TritonUnavailable

router = APIRouter(prefix="/v1/credit", tags=["credit"])

ScoreKey = Annotated[Caller, require("credit:score")]
ReadKey = Annotated[Caller, require("credit:read")]


@router.post("/scores", response_model=ScoreResponse)
async def score_applicants(data: ScoreRequest, request: Request, key: ScoreKey):
    """Each applicant's probability of default, score, decision under the tenant's policy and
    the reasons that raised its risk; every scoring is stored for audit."""
    state = request.app.state
    applicants = [a.model_dump() for a in data.applicants]
    try:
        answer = await score_routed(
            state.credit, credit.fields_of(applicants), key.environment, state.versions,
            state.canary,
        )  # fmt: skip
    except TritonRejected as error:  # the ranges are checked above: a contract out of step
        raise ApiError(422, str(error), param="applicants", code="bad_applicant") from None
    except TritonUnavailable:
        raise unavailable("the credit model is unavailable; retry shortly") from None

    def store():
        with state.sessions() as session:
            policy = policy_of(session, key.tenant_id)
            cut = Thresholds(policy["approve_below"], policy["decline_from"])
            return credit.store_scores(session, key.tenant_id, key.id, applicants, answer, cut)

    results = await run_in_threadpool(store)
    for decision, count in Counter(r.decision for r in results).items():
        state.metrics.credit_decisions.labels(decision=decision).inc(count)
    return ScoreResponse(results=results)


@router.get("/drift")
async def get_drift(
    request: Request,
    key: ReadKey,
    window: Annotated[int, Query(ge=MIN_WINDOW, le=20_000)] = 1000,
) -> dict:
    """The tenant's most recent scorings against the training split: each feature's and the
    probability's population stability index, `warning` from 0.1, `critical` from 0.25 (409
    with fewer than 100 scorings). The reference is the production version's. Sets the
    support_credit_psi gauges."""
    state = request.app.state
    production = (await state.versions.routing(CREDIT_ENSEMBLE)).production
    path = state.model_repository / credit_reference_file(production)

    def report() -> tuple[dict, str]:
        with state.sessions() as session:
            tenant = session.get(Tenant, key.tenant_id).name
            return drift_report(session, key.tenant_id, window, load_reference(path)), tenant

    found, tenant = await run_in_threadpool(report)
    set_gauges(state.metrics.credit_psi, tenant, found)
    return found


@router.get("/scores/{score_id}", response_model=ScoreRecord)
def get_score(score_id: IdPath, session: SessionDep, key: ReadKey):
    """A stored scoring: the applicant's fields as sent, the version and the result."""
    return credit.get_score(session, key.tenant_id, score_id)


@router.put("/scores/{score_id}/outcome", response_model=ScoreRecord)
def put_outcome(score_id: IdPath, outcome: Outcome, session: SessionDep, key: ScoreKey):
    """Report what became of a scored applicant (defaulted or not): the label `export
    credit-retrain` learns from, and the evidence the credit canary is watched by. A later
    report replaces an earlier one."""
    return credit.set_outcome(session, key.tenant_id, score_id, outcome.defaulted)


@router.get("/scores", response_model=ScorePage)
def list_scores(
    session: SessionDep,
    key: ReadKey,
    decision: Literal["approve", "review", "decline"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
):
    """The tenant's scorings, newest first; follow `next_cursor` for more."""
    return credit.list_scores(session, key.tenant_id, decision=decision, limit=limit, cursor=cursor)


@router.get("/policy", response_model=PolicyPublic)
def get_policy(session: SessionDep, key: ReadKey):
    """The tenant's costs and the thresholds they set (German credit's costs by default)."""
    return policy_of(session, key.tenant_id)


@router.put("/policy", response_model=PolicyPublic)
def put_policy(costs: PolicyCosts, session: SessionDep, key: AdminKey):
    """Set the tenant's costs (a tenant admin); the thresholds follow, audited."""
    return set_policy(session, key, costs.model_dump())
