"""ticket signals: language, sentiment and the auto-reply and bulk-mail flags read at intake,
and the triage's confidence band

Revision ID: 0015_ticket_signals
Revises: 0014_credit_outcomes
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_ticket_signals"
down_revision: str | None = "0014_credit_outcomes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
COLUMNS = ("confidence_band", "automation_reasons", "spam", "auto_reply", "sentiment", "language")


def upgrade() -> None:
    with op.batch_alter_table("tickets") as table:
        table.add_column(sa.Column("language", sa.String(length=8), nullable=True))
        table.add_column(sa.Column("sentiment", sa.String(length=20), nullable=True))
        table.add_column(
            sa.Column("auto_reply", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        table.add_column(sa.Column("spam", sa.Boolean(), nullable=False, server_default=sa.false()))
        table.add_column(sa.Column("automation_reasons", sa.JSON(), nullable=True))
        table.add_column(sa.Column("confidence_band", sa.String(length=10), nullable=True))
    op.create_index("ix_tickets_tenant_band", "tickets", ["tenant_id", "confidence_band"])


def downgrade() -> None:
    op.drop_index("ix_tickets_tenant_band", table_name="tickets")
    with op.batch_alter_table("tickets") as table:
        for name in COLUMNS:
            table.drop_column(name)
