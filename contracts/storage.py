"""The orchestrator's database as both sides find it: `DATABASE_URL`, else this SQLite file.

The orchestrator owns the schema (orchestrator/db); export only reads agents' corrections from it
(`python -m export dataset`, export/corrections.py), so both must default to the same place.
"""

from contracts import PROJECT_ROOT

DEFAULT_DATABASE_URL = f"sqlite:///{PROJECT_ROOT / 'var' / 'orchestrator.db'}"


def engine_url(url: str) -> str:
    """`url` as SQLAlchemy wants it: a plain `postgresql://` means the psycopg 3 driver."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1)
