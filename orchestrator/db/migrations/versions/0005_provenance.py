"""provenance of corrections: the model version on tickets and feedback, the model's confidence

Revision ID: 0005_provenance
Revises: 0004_jobs
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_provenance"
down_revision: str | None = "0004_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN of nullable columns, which SQLite has: rows stored before are left
    # without a version (null), which the API shows as not recorded.
    op.add_column("tickets", sa.Column("model_version", sa.String(length=50), nullable=True))
    op.add_column("feedback", sa.Column("model_version", sa.String(length=50), nullable=True))
    op.add_column("feedback", sa.Column("model_confidence", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_column("model_confidence")
        batch_op.drop_column("model_version")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("model_version")
