"""A tenant's credit decision policy: its costs, stored, and the thresholds they set
(contracts/credit.py `thresholds` says how)."""

from sqlalchemy.orm import Session

from contracts.credit import DEFAULT_COSTS, thresholds
from orchestrator.api.keycache import Caller
from orchestrator.db.models import CreditPolicy, utcnow
from orchestrator.services import audit


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
