"""Agents' intent corrections, read from the orchestrator's database for a training snapshot.

Read-only, with SQLAlchemy Core over the two tables it needs (the orchestrator owns the schema
and its migrations; export never imports the orchestrator): every `feedback` row whose field is
`intent`, with its ticket's subject and body.
"""

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    DateTime,
    Integer,
    String,
    Text,
    column,
    create_engine,
    make_url,
    select,
    table,
)
from sqlalchemy.exc import SQLAlchemyError

from contracts.storage import engine_url
from export.dataset import Correction

FEEDBACK = table(
    "feedback",
    column("id", Integer),
    column("ticket_id", Integer),
    column("key_id", Integer),
    column("field", String),
    column("old_value", String),
    column("new_value", String),
    column("model_version", String),
    column("created_at", DateTime),
)
TICKETS = table("tickets", column("id", Integer), column("subject", Text), column("body", Text))


class CorrectionsUnavailable(RuntimeError):
    """The database cannot be read as the orchestrator's (missing, unreachable, not migrated)."""


def shown_url(url: str) -> str:
    """`url` for messages and manifests: its password masked."""
    return make_url(url).render_as_string(hide_password=True)


def require_database(url: str) -> None:
    """A SQLite file that is not there is not created empty: CorrectionsUnavailable."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise CorrectionsUnavailable(
            f"no database at {shown_url(url)}: pass --database-url or set DATABASE_URL to the "
            "orchestrator's"
        )


def read_rows(url: str, query, what: str, migration: str) -> list:
    """The query's rows as mappings from the orchestrator's database at `url`;
    CorrectionsUnavailable names `what` could not be read and the migration it needs."""
    require_database(url)
    engine = create_engine(engine_url(url))
    try:
        with engine.connect() as connection:
            return connection.execute(query).mappings().all()
    except SQLAlchemyError as error:
        raise CorrectionsUnavailable(
            f"cannot read {what} from {shown_url(url)}: is it the orchestrator's database, "
            f"migrated to {migration} or later (`python -m orchestrator migrate`)? "
            f"{error.__class__.__name__}: {str(error).splitlines()[0]}"
        ) from error
    finally:
        engine.dispose()


def read_corrections(url: str) -> list[Correction]:
    query = (
        select(FEEDBACK, TICKETS.c.subject, TICKETS.c.body)
        .join(TICKETS, TICKETS.c.id == FEEDBACK.c.ticket_id)
        .where(FEEDBACK.c.field == "intent")
        .order_by(FEEDBACK.c.id)
    )
    rows = read_rows(url, query, "corrections", "0005_provenance")
    return [
        Correction(
            id=row["id"],
            text=f"{row['subject']}\n{row['body']}",
            category=row["new_value"],
            created_at=as_utc(row["created_at"]),
            ticket_id=row["ticket_id"],
            key_id=row["key_id"],
            model_version=row["model_version"],
            predicted=row["old_value"],
        )
        for row in rows
    ]


def as_utc(value: datetime) -> datetime:
    """SQLite hands back the stored UTC time without its zone; PostgreSQL with it."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
