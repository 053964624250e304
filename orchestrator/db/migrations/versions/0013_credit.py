"""credit: every applicant scored (the audit) and each tenant's decision policy

Revision ID: 0013_credit
Revises: 0012_image_store
Create Date: 2026-12-01 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_credit"
down_revision: str | None = "0012_image_store"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credit_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("applicant", sa.JSON(), nullable=False),
        sa.Column("model_version", sa.String(length=50), nullable=False),
        sa.Column("probability_of_default", sa.Double(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_credit_scores_tenant_id_id", "credit_scores", ["tenant_id", "id"])
    op.create_table(
        "credit_policies",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("cost_accept_bad", sa.Double(), nullable=False),
        sa.Column("cost_refuse_good", sa.Double(), nullable=False),
        sa.Column("cost_review", sa.Double(), nullable=False),
        sa.Column("approve_below", sa.Double(), nullable=False),
        sa.Column("decline_from", sa.Double(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["updated_by"], ["api_keys.id"]),
        sa.PrimaryKeyConstraint("tenant_id"),
    )


def downgrade() -> None:
    op.drop_table("credit_policies")
    op.drop_index("ix_credit_scores_tenant_id_id", table_name="credit_scores")
    op.drop_table("credit_scores")
