"""environments: keys and tickets carry one; versioned configurations per environment

Revision ID: 0006_environments
Revises: 0005_provenance
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_environments"
down_revision: str | None = "0005_provenance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN with a server default, which SQLite has: every existing key and
    # ticket is production's, as it was before environments existed.
    for table in ("api_keys", "tickets"):
        op.add_column(
            table,
            sa.Column(
                "environment", sa.String(length=20), server_default="production", nullable=False
            ),
        )
    op.create_table(
        "config_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("environment", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "environment", "version", name="uq_config_versions_version"),
    )
    op.create_table(
        "active_configs",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("environment", sa.String(length=20), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["config_versions.id"]),
        sa.PrimaryKeyConstraint("name", "environment"),
    )


def downgrade() -> None:
    op.drop_table("active_configs")
    op.drop_table("config_versions")
    for table in ("tickets", "api_keys"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("environment")
