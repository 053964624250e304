"""Real databases for the job queue's tests, and tickets put on them as the API stores them."""

import pytest
from sqlalchemy import Engine, select

from orchestrator.db.models import Tenant, Ticket
from orchestrator.db.session import make_engine, session_factory
from orchestrator.schemas.tickets import TicketCreate
from orchestrator.services.tickets import create_ticket
from tests.utils.orchestrator import POSTGRES_URL, postgres_reachable, reset_postgres


def database_engine(kind: str, tmp_path) -> Engine:
    """A migrated, empty database: an SQLite file, or the PostgreSQL test database."""
    if kind == "sqlite":
        return make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    if not postgres_reachable():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    reset_postgres()
    return make_engine(POSTGRES_URL)


def enqueue(
    engine: Engine,
    tenant: str,
    count: int,
    intent: str | None = None,
    environment: str = "production",
) -> list[int]:
    """Store `count` tickets of `tenant` with their jobs; the ticket ids come back.

    With `intent`, the tickets count as triaged already, so a worker only drafts them.
    """
    with session_factory(engine)() as session:
        found = session.scalar(select(Tenant).where(Tenant.name == tenant))
        if found is None:
            found = Tenant(name=tenant)
            session.add(found)
            session.commit()
        ids = []
        for i in range(count):
            data = TicketCreate(subject=f"{tenant} {i}", body=f"Where is my card? ({i})")
            ticket = create_ticket(session, found.id, data, environment=environment).ticket
            ids.append(ticket.id)
        if intent is not None:
            for ticket in session.scalars(select(Ticket).where(Ticket.id.in_(ids))):
                ticket.intent, ticket.department, ticket.priority = intent, "cards", "normal"
            session.commit()
        return ids
