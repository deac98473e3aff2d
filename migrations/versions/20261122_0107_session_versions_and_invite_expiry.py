"""rater session versions and one-time, expiring invite links

Revision ID: 0107
Revises: 0103
Create Date: 2026-11-22 06:10:00

Existing raters get session_version 0 and no outstanding invite (invite_expires_at NULL): links
issued before this revision stop working, and admins re-invite whoever still needs one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0107"
down_revision: str | None = "0103"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("raters") as batch:
        batch.add_column(
            sa.Column("session_version", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("invite_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("raters") as batch:
        batch.drop_column("invite_expires_at")
        batch.drop_column("session_version")
