"""diagnoses: chest x-rays, the model's answers and clinicians' confirmations

Revision ID: 0011_diagnoses
Revises: 0010_drift_runs
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_diagnoses"
down_revision: str | None = "0010_drift_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "diagnoses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(length=20), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=20), nullable=False),
        sa.Column("probability", sa.Double(), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("model_version", sa.String(length=50), nullable=True),
        sa.Column("image_mean", sa.Double(), nullable=False),
        sa.Column("image_std", sa.Double(), nullable=False),
        sa.Column("confirmed_label", sa.String(length=20), nullable=True),
        sa.Column("confirmed_by", sa.Integer(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("image", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"]),
        sa.ForeignKeyConstraint(["confirmed_by"], ["api_keys.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_diagnoses_tenant_id_id", "diagnoses", ["tenant_id", "id"])
    op.create_index("ix_diagnoses_expires_at", "diagnoses", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_diagnoses_expires_at", table_name="diagnoses")
    op.drop_index("ix_diagnoses_tenant_id_id", table_name="diagnoses")
    op.drop_table("diagnoses")
