"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from orchestrator.db.migrate import alembic_config, upgrade
from orchestrator.db.models import Base
from orchestrator.db.session import make_engine
from tests.utils.orchestrator import POSTGRES_URL, postgres_reachable, reset_postgres

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrations.db'}"
    if not postgres_reachable():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432 (database test)")
    reset_postgres()
    return POSTGRES_URL


def test_migrations_match_the_models(empty_database):
    engine = make_engine(empty_database)  # migrates to head
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == [], "models changed without a migration: alembic revision --autogenerate"
    engine.dispose()


def test_migrating_twice_is_harmless_and_downgrade_empties(empty_database):
    engine = make_engine(empty_database)
    upgrade(engine)  # a second replica starting: nothing to do
    assert {"tickets", "jobs", "alembic_version"} <= set(inspect(engine).get_table_names())
    command.downgrade(alembic_config(empty_database), "base")
    assert set(inspect(create_engine(empty_database)).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_keys_and_tickets_stored_before_environments_are_productions(empty_database):
    engine = create_engine(empty_database)
    upgrade(engine, "0005_provenance")
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO tenants (id, name, created_at) VALUES (1, 'acme', :now)"),
            {"now": NOW},
        )
        connection.execute(
            text(
                "INSERT INTO api_keys (tenant_id, digest, scopes, created_at)"
                " VALUES (1, 'd', 'chat', :now)"
            ),
            {"now": NOW},
        )
        connection.execute(
            text(
                "INSERT INTO tickets (tenant_id, channel, subject, body, metadata, status,"
                " created_at, updated_at) VALUES (1, 'web', 's', 'b', '{}', 'queued', :now, :now)"
            ),
            {"now": NOW},
        )
    upgrade(engine)
    with engine.connect() as connection:
        for table in ("api_keys", "tickets"):
            environments = connection.scalars(text(f"SELECT environment FROM {table}")).all()
            assert environments == ["production"], table
    engine.dispose()
