"""adaptive allocation (issue 25): studies.allocation and its state, comparisons.prompt_rank,
assignment status parked

Revision ID: 0115
Revises: 0114
Create Date: 2026-12-06 16:10:00

Existing studies are uniform (every comparison asked for), the behaviour they were created with;
their comparisons get no prompt rank. `parked` is the status of an adaptive study's item held
back from raters (not deleted: it is opened again when the allocation changes).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0115"
down_revision: str | None = "0114"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_OLD_STATUSES = "status IN ('pending', 'served', 'skipped', 'done', 'flagged', 'released')"
_NEW_STATUSES = (
    "status IN ('pending', 'served', 'skipped', 'done', 'flagged', 'released', 'parked')"
)


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(
            sa.Column("allocation", sa.String(16), server_default="uniform", nullable=False)
        )
        batch.add_column(
            sa.Column("allocation_target", sa.Float(), server_default="0.9", nullable=False)
        )
        batch.add_column(sa.Column("allocation_contenders", _JSON, nullable=True))
        batch.add_column(
            sa.Column("allocation_frontier", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("allocation_batch", sa.Integer(), server_default="1", nullable=False)
        )
        batch.add_column(
            sa.Column("allocation_checked_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("allocation_leader_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("allocation_p", sa.Float(), nullable=True))
        batch.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("decided_after", sa.Integer(), nullable=True))
        batch.create_check_constraint("allocation_valid", "allocation IN ('uniform', 'adaptive')")
        batch.create_check_constraint(
            "allocation_target_range", "allocation_target > 0.5 AND allocation_target < 1"
        )
    with op.batch_alter_table("comparisons") as batch:
        batch.add_column(sa.Column("prompt_rank", sa.Integer(), nullable=True))
    with op.batch_alter_table("assignments") as batch:
        batch.drop_constraint(op.f("ck_assignments_status_valid"), type_="check")
        batch.create_check_constraint("status_valid", _NEW_STATUSES)


def downgrade() -> None:
    # Without adaptive allocation nothing is held back: parked items go back to the queue.
    op.execute("UPDATE assignments SET status = 'pending' WHERE status = 'parked'")
    with op.batch_alter_table("assignments") as batch:
        batch.drop_constraint(op.f("ck_assignments_status_valid"), type_="check")
        batch.create_check_constraint("status_valid", _OLD_STATUSES)
    with op.batch_alter_table("comparisons") as batch:
        batch.drop_column("prompt_rank")
    with op.batch_alter_table("studies") as batch:
        batch.drop_constraint(op.f("ck_studies_allocation_target_range"), type_="check")
        batch.drop_constraint(op.f("ck_studies_allocation_valid"), type_="check")
        for column in (
            "decided_after",
            "decided_at",
            "allocation_p",
            "allocation_leader_id",
            "allocation_checked_at",
            "allocation_batch",
            "allocation_frontier",
            "allocation_contenders",
            "allocation_target",
            "allocation",
        ):
            batch.drop_column(column)
