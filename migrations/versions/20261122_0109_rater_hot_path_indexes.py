"""indexes for the rater's hot paths: expired leases, the undoable verdict, a study's comparisons

Revision ID: 0109
Revises: 0108
Create Date: 2026-11-22 09:10:00

Every request for work looks for served items past their lease (now a scan of the served ones
only, not of every assignment) and for the rater's verdict still inside the undo window (now a
scan of the last minutes' verdicts, not of every verdict ever given). Comparisons are filtered by
study in hand-backs, skips and every admin page.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0109"
down_revision: str | None = "0108"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    served = sa.text("status = 'served'")
    live = sa.text("withdrawn_at IS NULL")
    op.create_index(
        "ix_assignments_served_lease",
        "assignments",
        ["served_at"],
        postgresql_where=served,
        sqlite_where=served,
    )
    op.create_index(
        "ix_judgements_live_created",
        "judgements",
        ["created_at"],
        postgresql_where=live,
        sqlite_where=live,
    )
    op.create_index("ix_comparisons_study_id", "comparisons", ["study_id"])


def downgrade() -> None:
    op.drop_index("ix_comparisons_study_id", table_name="comparisons")
    op.drop_index("ix_judgements_live_created", table_name="judgements")
    op.drop_index("ix_assignments_served_lease", table_name="assignments")
