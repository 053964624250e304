"""A tenant's credit decisions from its costs: what a wrongly approved defaulter costs, what a
wrongly declined good applicant costs, and what a manual review costs (a review is taken to
find the truth). For a calibrated probability of default p the cheapest action is:

- approve, costing p * accept_bad in expectation,
- decline, costing (1 - p) * refuse_good,
- review, costing review;

so approve below review / accept_bad, decline from 1 - review / refuse_good, and review in
between. Where a review never pays, the band closes at the break-even point
refuse_good / (refuse_good + accept_bad), and there is no review.
"""

from dataclasses import dataclass

from sqlalchemy.orm import Session

from orchestrator.api.keycache import Caller
from orchestrator.db.models import CreditPolicy, utcnow
from orchestrator.services import audit

# German credit's cost matrix (accepting a bad applicant costs 5, refusing a good one 1), and
# a review at half a refused good applicant's cost: what a tenant meets before setting its own
DEFAULT_COSTS = {"cost_accept_bad": 5.0, "cost_refuse_good": 1.0, "cost_review": 0.5}


@dataclass(frozen=True)
class Thresholds:
    approve_below: float
    decline_from: float

    def decision(self, probability: float) -> str:
        if probability < self.approve_below:
            return "approve"
        return "decline" if probability >= self.decline_from else "review"


def thresholds(cost_accept_bad: float, cost_refuse_good: float, cost_review: float) -> Thresholds:
    break_even = cost_refuse_good / (cost_refuse_good + cost_accept_bad)
    approve_below = cost_review / cost_accept_bad
    decline_from = 1 - cost_review / cost_refuse_good
    if approve_below >= break_even or decline_from <= break_even:
        return Thresholds(break_even, break_even)
    return Thresholds(approve_below, decline_from)


def policy_of(session: Session, tenant_id: int) -> dict:
    """The tenant's costs and thresholds (the defaults until it sets its own)."""
    row = session.get(CreditPolicy, tenant_id)
    costs = DEFAULT_COSTS if row is None else {name: getattr(row, name) for name in DEFAULT_COSTS}
    cut = thresholds(**costs)
    return {
        **costs,
        "approve_below": cut.approve_below,
        "decline_from": cut.decline_from,
        "default": row is None,
        "updated_at": None if row is None else row.updated_at,
    }


def set_policy(session: Session, caller: Caller, costs: dict) -> dict:
    cut = thresholds(**costs)
    row = session.get(CreditPolicy, caller.tenant_id) or CreditPolicy(tenant_id=caller.tenant_id)
    for name, value in costs.items():
        setattr(row, name, value)
    row.approve_below, row.decline_from = cut.approve_below, cut.decline_from
    row.updated_by, row.updated_at = caller.id, utcnow()
    session.add(row)
    audit.record(session, caller, "credit_policy", "credit_scoring", costs)
    session.commit()
    return policy_of(session, caller.tenant_id)
