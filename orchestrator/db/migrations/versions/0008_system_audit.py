"""system audit entries: the orchestrator itself may act (a canary's automatic abort)

Revision ID: 0008_system_audit
Revises: 0007_model_versions
Create Date: 2026-12-04 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_system_audit"
down_revision: str | None = "0007_model_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite cannot alter a column: batch mode copies the table (a short audit log).
    with op.batch_alter_table("audit_log") as table:
        table.alter_column("key_id", existing_type=sa.Integer(), nullable=True)
        table.alter_column("tenant_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM audit_log WHERE key_id IS NULL OR tenant_id IS NULL")
    with op.batch_alter_table("audit_log") as table:
        table.alter_column("key_id", existing_type=sa.Integer(), nullable=False)
        table.alter_column("tenant_id", existing_type=sa.Integer(), nullable=False)
