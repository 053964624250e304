"""The traffic a drift run compares: each scope's newest triaged tickets, and how many of them
agents corrected.

A scope is one tenant, or all tenants together. Only tickets the model predicted count (they
carry a confidence and a top list): an intent an agent set before triage says nothing about the
model. The predicted intent is the model's first choice, which corrections never change, so
that corrected tickets show what the model said, not what the agent said.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from orchestrator.db.models import Feedback, Tenant, Ticket, utcnow
from orchestrator.services.triage import ticket_text, triage_input

ALL = None  # the scope of all tenants together


@dataclass(frozen=True)
class Scope:
    tenant_id: int | None  # ALL: every tenant
    name: str  # the tenant's name, or "all": the metrics' `tenant` label
    available: int  # predicted tickets within the window's age


@dataclass(frozen=True)
class WindowTicket:
    text: str  # what triage read
    intent: str  # the model's prediction
    confidence: float
    model_version: str | None


@dataclass(frozen=True)
class Window:
    scope: Scope
    tickets: list[WindowTicket]
    corrected: int  # tickets of the window whose intent an agent corrected

    @property
    def size(self) -> int:
        return len(self.tickets)

    @property
    def override_rate(self) -> float | None:
        """The corrected share; None when no agent corrected any (perhaps nobody reviews)."""
        if not self.corrected or not self.tickets:
            return None
        return self.corrected / len(self.tickets)


def _predicted(since: datetime) -> Select:
    return select(Ticket).where(
        Ticket.confidence.is_not(None), Ticket.top.is_not(None), Ticket.created_at >= since
    )


def scopes(session: Session, *, hours: float, now: datetime | None = None) -> list[Scope]:
    """All tenants together, then each tenant with predicted tickets in the last `hours`."""
    since = (now or utcnow()) - timedelta(hours=hours)
    counted = _predicted(since).with_only_columns(Ticket.tenant_id, func.count())
    counts = dict(session.execute(counted.group_by(Ticket.tenant_id)).all())
    names = dict(
        session.execute(select(Tenant.id, Tenant.name).where(Tenant.id.in_(list(counts)))).all()
    )
    per_tenant = [Scope(t, names[t], n) for t, n in sorted(counts.items())]
    return [Scope(ALL, "all", sum(counts.values())), *per_tenant]


def load_window(
    session: Session, scope: Scope, *, size: int, hours: float, now: datetime | None = None
) -> Window:
    """The scope's newest `size` predicted tickets of the last `hours`."""
    query = _predicted((now or utcnow()) - timedelta(hours=hours))
    if scope.tenant_id is not ALL:
        query = query.where(Ticket.tenant_id == scope.tenant_id)
    rows = session.scalars(query.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(size))
    tickets, ids = [], []
    for ticket in rows:
        ids.append(ticket.id)
        tickets.append(
            WindowTicket(
                text=triage_input(ticket_text(ticket.subject, ticket.body)),
                intent=ticket.top[0]["intent"] if ticket.top else ticket.intent,
                confidence=ticket.confidence,
                model_version=ticket.model_version,
            )
        )
    return Window(scope, tickets, _corrected(session, ids))


def _corrected(session: Session, ticket_ids: list[int]) -> int:
    if not ticket_ids:
        return 0
    query = select(func.count(func.distinct(Feedback.ticket_id))).where(
        Feedback.field == "intent", Feedback.ticket_id.in_(ticket_ids)
    )
    return session.scalar(query) or 0
