"""base responses shared across comparisons: studies.base_reuse

Revision ID: 0111
Revises: 0110
Create Date: 2026-12-01 23:00:00

Existing studies get 1, the behaviour they were created with (a base response per comparison).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0111"
down_revision: str | None = "0110"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("base_reuse", sa.Integer(), server_default="1", nullable=False))
        batch.create_check_constraint("base_reuse_positive", "base_reuse >= 1")


def downgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.drop_constraint(op.f("ck_studies_base_reuse_positive"), type_="check")
        batch.drop_column("base_reuse")
