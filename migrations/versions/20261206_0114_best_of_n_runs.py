"""training_runs.algorithm may be 'best-of-n'

Revision ID: 0114
Revises: 0113
Create Date: 2026-12-06 16:20:00

Issue 24. A best-of-n ladder (`rlhf ladder import`) registers the policies BoN(n) as checkpoints
of one run: no weights of their own (base + proxy reward model + n), responses imported, KL the
analytic log n - (n-1)/n. Its own algorithm keeps the evaluation queue from generating for them
(as for 'external' runs) while the dashboard and the recommendation read them like any run.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0114"
down_revision: str | None = "0113"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "algorithm IN ('ppo', 'dpo', 'sft', 'rm', 'external')"
_NEW = "algorithm IN ('ppo', 'dpo', 'sft', 'rm', 'external', 'best-of-n')"


def upgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_constraint(op.f("ck_training_runs_algorithm_valid"), type_="check")
        batch.create_check_constraint("algorithm_valid", _NEW)


def downgrade() -> None:
    # The old constraint cannot hold a best-of-n run: those runs (their checkpoints, generations
    # and evaluations by ON DELETE CASCADE) go; `rlhf ladder import` registers them again.
    op.execute(sa.text("DELETE FROM training_runs WHERE algorithm = 'best-of-n'"))
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_constraint(op.f("ck_training_runs_algorithm_valid"), type_="check")
        batch.create_check_constraint("algorithm_valid", _OLD)
