"""blind judging: base replicates, leases, flags, withdrawn verdicts, audit log

Revision ID: 0102
Revises: 0001
Create Date: 2026-11-22 05:58:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0102"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_OLD_STATUSES = "status IN ('pending', 'served', 'skipped', 'done')"
_NEW_STATUSES = "status IN ('pending', 'served', 'skipped', 'done', 'flagged', 'released')"
_AUDIT_ACTIONS = (
    "action IN ('reassign', 'rebalance', 'withdraw', 'lease_expired', 'skip_released', "
    "'flagged', 'auto_tie', 'closed')"
)


def upgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("replicates", sa.Integer(), server_default="1", nullable=False)
        )
        batch_op.create_check_constraint("replicates_positive", "replicates >= 1")
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("replicate", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("auto_choice", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("closed_reason", sa.Text(), nullable=True))
        batch_op.create_check_constraint(
            "auto_choice_valid", "auto_choice IS NULL OR auto_choice IN ('tie')"
        )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("skip_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("flag_kind", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("flag_reason", sa.Text(), nullable=True))
        batch_op.drop_constraint(op.f("ck_assignments_status_valid"), type_="check")
        batch_op.create_check_constraint("status_valid", _NEW_STATUSES)
        batch_op.create_check_constraint(
            "flag_kind_valid", "flag_kind IS NULL OR flag_kind IN ('broken', 'unsafe', 'other')"
        )
    with op.batch_alter_table("judgements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint(op.f("uq_judgements_assignment_id"), type_="unique")
        batch_op.create_index(
            "uq_judgements_live_assignment",
            ["assignment_id"],
            unique=True,
            postgresql_where=sa.text("withdrawn_at IS NULL"),
            sqlite_where=sa.text("withdrawn_at IS NULL"),
        )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=True),
        sa.Column("judgement_id", sa.Integer(), nullable=True),
        sa.Column("details", _JSON, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(_AUDIT_ACTIONS, name=op.f("ck_audit_log_action_valid")),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            name=op.f("fk_audit_log_study_id_studies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["raters.id"],
            name=op.f("fk_audit_log_actor_id_raters"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignments.id"],
            name=op.f("fk_audit_log_assignment_id_assignments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["judgement_id"],
            ["judgements.id"],
            name=op.f("fk_audit_log_judgement_id_judgements"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_log_study_created", ["study_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_study_created")
    op.drop_table("audit_log")
    # Withdrawn verdicts cannot live beside a one-per-assignment constraint: drop them first.
    op.execute("DELETE FROM judgements WHERE withdrawn_at IS NOT NULL")
    with op.batch_alter_table("judgements", schema=None) as batch_op:
        batch_op.drop_index("uq_judgements_live_assignment")
        batch_op.create_unique_constraint(op.f("uq_judgements_assignment_id"), ["assignment_id"])
        batch_op.drop_column("withdrawn_at")
    op.execute("UPDATE assignments SET status = 'pending' WHERE status IN ('flagged', 'released')")
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_assignments_flag_kind_valid"), type_="check")
        batch_op.drop_constraint(op.f("ck_assignments_status_valid"), type_="check")
        batch_op.create_check_constraint("status_valid", _OLD_STATUSES)
        batch_op.drop_column("flag_reason")
        batch_op.drop_column("flag_kind")
        batch_op.drop_column("skip_count")
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_comparisons_auto_choice_valid"), type_="check")
        batch_op.drop_column("closed_reason")
        batch_op.drop_column("auto_choice")
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_column("replicate")
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_evaluations_replicates_positive"), type_="check")
        batch_op.drop_column("replicates")
