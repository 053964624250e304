"""drift runs: each comparison of recent traffic with the training reference

Revision ID: 0010_drift_runs
Revises: 0009_retrain_runs
Create Date: 2026-12-04 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_drift_runs"
down_revision: str | None = "0009_retrain_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "drift_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pass_id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=True),
        sa.Column("model_version", sa.String(length=50), nullable=True),
        sa.Column("reference_size", sa.Integer(), nullable=False),
        sa.Column("current_size", sa.Integer(), nullable=False),
        sa.Column("drift_share", sa.Double(), nullable=False),
        sa.Column("prediction_drift_score", sa.Double(), nullable=False),
        sa.Column("embedding_drift_score", sa.Double(), nullable=False),
        sa.Column("override_rate", sa.Double(), nullable=True),
        sa.Column("drifted", sa.Boolean(), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("report_file", sa.String(length=100), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_drift_runs_pass_id", "drift_runs", ["pass_id"])
    op.create_index("ix_drift_runs_created_at", "drift_runs", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_drift_runs_created_at", table_name="drift_runs")
    op.drop_index("ix_drift_runs_pass_id", table_name="drift_runs")
    op.drop_table("drift_runs")
