"""The Alembic migrations build exactly the schema the models describe, on both databases."""

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from orchestrator.db.migrate import alembic_config, upgrade
from orchestrator.db.models import Base
from orchestrator.db.session import make_engine
from tests.utils.orchestrator import POSTGRES_URL, postgres_reachable, reset_postgres


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
