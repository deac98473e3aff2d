"""study quality: rater guidelines, attention pass threshold, rater exclusions

Revision ID: 0103
Revises: 0102
Create Date: 2026-11-22 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0103"
down_revision: str | None = "0102"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("guidelines", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("min_attention_pass_rate", sa.Float(), server_default="0.8", nullable=False)
        )
        batch_op.create_check_constraint(
            "attention_pass_range", "min_attention_pass_rate >= 0 AND min_attention_pass_rate <= 1"
        )
    with op.batch_alter_table("study_raters", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("guidelines_seen_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "rater_exclusions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("excluded_by_id", sa.Integer(), nullable=True),
        sa.Column(
            "excluded_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("restored_by_id", sa.Integer(), nullable=True),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            name=op.f("fk_rater_exclusions_study_id_studies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rater_id"], ["raters.id"], name=op.f("fk_rater_exclusions_rater_id_raters")
        ),
        sa.ForeignKeyConstraint(
            ["excluded_by_id"],
            ["raters.id"],
            name=op.f("fk_rater_exclusions_excluded_by_id_raters"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["restored_by_id"],
            ["raters.id"],
            name=op.f("fk_rater_exclusions_restored_by_id_raters"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rater_exclusions")),
    )
    with op.batch_alter_table("rater_exclusions", schema=None) as batch_op:
        batch_op.create_index(
            "uq_rater_exclusions_active",
            ["study_id", "rater_id"],
            unique=True,
            postgresql_where=sa.text("restored_at IS NULL"),
            sqlite_where=sa.text("restored_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("rater_exclusions", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_rater_exclusions_active",
            postgresql_where=sa.text("restored_at IS NULL"),
            sqlite_where=sa.text("restored_at IS NULL"),
        )
    op.drop_table("rater_exclusions")
    with op.batch_alter_table("study_raters", schema=None) as batch_op:
        batch_op.drop_column("guidelines_seen_at")
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_studies_attention_pass_range"), type_="check")
        batch_op.drop_column("min_attention_pass_rate")
        batch_op.drop_column("guidelines")
