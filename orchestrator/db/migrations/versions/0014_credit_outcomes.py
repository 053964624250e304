"""credit outcomes: whether a scored applicant went on to default, as the lender reports it
(what `export credit-retrain` learns from and the credit canary is judged by)

Revision ID: 0014_credit_outcomes
Revises: 0013_credit
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_credit_outcomes"
down_revision: str | None = "0013_credit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("credit_scores") as table:
        table.add_column(sa.Column("defaulted", sa.Boolean(), nullable=True))
        table.add_column(sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("credit_scores") as table:
        table.drop_column("outcome_at")
        table.drop_column("defaulted")
