"""Alembic's entry: run on the connection the app hands over, or on DATABASE_URL's."""

from alembic import context
from sqlalchemy import create_engine

from contracts.storage import engine_url
from orchestrator.db.models import Base, UTCDateTime
from orchestrator.settings import OrchestratorSettings

config = context.config
target_metadata = Base.metadata


def _render_item(kind: str, item, autogen_context):
    """Migrations use plain column types, so they do not change when the models' code does."""
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or OrchestratorSettings().database_url
    engine = create_engine(engine_url(url))
    with engine.begin() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run them online")
run_online()
