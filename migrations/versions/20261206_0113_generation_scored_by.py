"""generations.scored_by and the rewards at the run's own response length

Revision ID: 0113
Revises: 0112
Create Date: 2026-12-06 15:45:00

Issue 27. A row's sampling settings were hashed into settings_key, but what scored it was only in
the job's config, which every (re)start overwrote: a job resumed after another evaluation reward
model was registered, or with another reward model or dtype, averaged two models' scores.
`scored_by` pins each row's scores to the reward model, the evaluation reward model and the
dtype of each (NULL on rows written before: the job's stored config then stands for them).

PPO optimised responses of `ppo.response_length` tokens (48 by default) while the evaluation
scores answers of up to `max_new_tokens` (512): `reward_at_train_length` and
`eval_reward_at_train_length` are each model's score of the response's first that many tokens
(read in the same forward pass), the reward PPO optimised, beside the extrapolated one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0113"
down_revision: str | None = "0112"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.add_column("generations", sa.Column("scored_by", _JSON, nullable=True))
    op.add_column("generations", sa.Column("reward_at_train_length", sa.Float(), nullable=True))
    op.add_column(
        "generations", sa.Column("eval_reward_at_train_length", sa.Float(), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("eval_reward_at_train_length")
        batch.drop_column("reward_at_train_length")
        batch.drop_column("scored_by")
