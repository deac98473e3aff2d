"""generation settings key and evaluation reward score

Revision ID: 0105
Revises: 0107
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0105"
down_revision: str | None = "0107"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("generations", sa.Column("settings_key", sa.String(length=16), nullable=True))
    op.add_column("generations", sa.Column("eval_reward_score", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("generations", "eval_reward_score")
    op.drop_column("generations", "settings_key")
