"""diagnoses: images kept in an image store (a folder, MinIO) hold its key instead of the bytes

Revision ID: 0012_image_store
Revises: 0011_diagnoses
Create Date: 2026-12-01 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_image_store"
down_revision: str | None = "0011_diagnoses"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("diagnoses") as batch:  # SQLite rebuilds the table
        batch.add_column(sa.Column("image_key", sa.String(length=80), nullable=True))
        batch.alter_column("image", existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    # images kept outside the database cannot come back into it: their rows go
    op.execute("DELETE FROM diagnoses WHERE image IS NULL")
    with op.batch_alter_table("diagnoses") as batch:
        batch.alter_column("image", existing_type=sa.LargeBinary(), nullable=False)
        batch.drop_column("image_key")
