"""idle release and missing attention checks: study_raters.joined_at,
studies.attention_checks_missing, audit action rater_left

Revision ID: 0108
Revises: 0105
Create Date: 2026-11-22 09:10:00

Existing study members get joined_at = the migration time, so nobody's work moves until a full
inactivity window (RLHF_IDLE_RELEASE_SECONDS) has passed without them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0108"
down_revision: str | None = "0105"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_ACTIONS = (
    "action IN ('reassign', 'rebalance', 'withdraw', 'lease_expired', 'skip_released', "
    "'flagged', 'auto_tie', 'closed')"
)
_NEW_ACTIONS = (
    "action IN ('reassign', 'rebalance', 'withdraw', 'lease_expired', 'skip_released', "
    "'flagged', 'auto_tie', 'closed', 'rater_left')"
)


def upgrade() -> None:
    with op.batch_alter_table("study_raters") as batch:
        batch.add_column(
            sa.Column(
                "joined_at",
                sa.DateTime(timezone=True),
                server_default=sa.func.now(),
                nullable=False,
            )
        )
    with op.batch_alter_table("studies") as batch:
        batch.add_column(
            sa.Column(
                "attention_checks_missing", sa.Integer(), server_default="0", nullable=False
            )
        )
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint(op.f("ck_audit_log_action_valid"), type_="check")
        batch.create_check_constraint("action_valid", _NEW_ACTIONS)


def downgrade() -> None:
    op.execute("DELETE FROM audit_log WHERE action = 'rater_left'")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint(op.f("ck_audit_log_action_valid"), type_="check")
        batch.create_check_constraint("action_valid", _OLD_ACTIONS)
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("attention_checks_missing")
    with op.batch_alter_table("study_raters") as batch:
        batch.drop_column("joined_at")
