"""platform tenant flag and key origin: platform vs tenant admins, bootstrap key rotation

Revision ID: 0003_auth
Revises: 0002_intake
Create Date: 2026-11-30 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_auth"
down_revision: str | None = "0002_intake"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What the bootstrap key of the earlier schema looked like: every scope, in the "admin" tenant.
_OLD_BOOTSTRAP_SCOPES = "admin chat tickets:read tickets:write"


def upgrade() -> None:
    # Plain ADD COLUMN, which SQLite has: a batch operation would copy and drop `tenants`,
    # which the foreign keys of existing rows forbid.
    op.add_column(
        "tenants",
        sa.Column("is_platform", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "api_keys",
        sa.Column("origin", sa.String(length=20), server_default="api", nullable=False),
    )
    # The earlier code made the tenant named "admin" at start and gave it the bootstrap keys;
    # mark them, so that the next start revokes the ones the environment no longer names.
    op.execute("UPDATE tenants SET is_platform = true WHERE name = 'admin'")
    op.execute(
        sa.text(
            "UPDATE api_keys SET origin = 'bootstrap' WHERE scopes = :scopes"
            " AND tenant_id IN (SELECT id FROM tenants WHERE is_platform)"
        ).bindparams(scopes=_OLD_BOOTSTRAP_SCOPES)
    )


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("origin")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("is_platform")
