"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 00:42:29.965362
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    
    op.create_table('prompt_sets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('split', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=1000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint("split IN ('train', 'heldout')", name=op.f('ck_prompt_sets_split_valid')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prompt_sets')),
    sa.UniqueConstraint('name', name=op.f('uq_prompt_sets_name'))
    )
    op.create_table('raters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('rater', 'admin')", name=op.f('ck_raters_role_valid')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_raters')),
    sa.UniqueConstraint('name', name=op.f('uq_raters_name')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_raters_token_hash'))
    )
    op.create_table('training_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('algorithm', sa.String(length=16), nullable=False),
    sa.Column('base_model', sa.String(length=500), nullable=False),
    sa.Column('reward_model', sa.String(length=500), nullable=True),
    sa.Column('config', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('output_dir', sa.String(length=1000), nullable=True),
    sa.Column('compute_budget', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('compute_spent_seconds', sa.Float(), nullable=False),
    sa.Column('device', sa.String(length=100), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("algorithm IN ('ppo', 'dpo', 'sft', 'rm', 'external')", name=op.f('ck_training_runs_algorithm_valid')),
    sa.CheckConstraint("status IN ('pending', 'running', 'finished', 'stopped', 'failed')", name=op.f('ck_training_runs_status_valid')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_runs')),
    sa.UniqueConstraint('name', name=op.f('uq_training_runs_name'))
    )
    op.create_table('checkpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('path', sa.String(length=1000), nullable=False),
    sa.Column('checksum', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('kl_coef', sa.Float(), nullable=True),
    sa.Column('compute_spent_seconds', sa.Float(), nullable=True),
    sa.Column('size_bytes', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint("kind IN ('base', 'trained')", name=op.f('ck_checkpoints_kind_valid')),
    sa.CheckConstraint("status IN ('registered', 'evaluating', 'evaluated', 'failed')", name=op.f('ck_checkpoints_status_valid')),
    sa.CheckConstraint('step >= 0', name=op.f('ck_checkpoints_step_nonnegative')),
    sa.ForeignKeyConstraint(['run_id'], ['training_runs.id'], name=op.f('fk_checkpoints_run_id_training_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkpoints')),
    sa.UniqueConstraint('run_id', 'step', name=op.f('uq_checkpoints_run_id_step'))
    )
    op.create_table('prompts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prompt_set_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('text_hash', sa.String(length=64), nullable=False),
    sa.Column('category', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['prompt_set_id'], ['prompt_sets.id'], name=op.f('fk_prompts_prompt_set_id_prompt_sets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prompts')),
    sa.UniqueConstraint('prompt_set_id', 'external_id', name=op.f('uq_prompts_prompt_set_id_external_id')),
    sa.UniqueConstraint('prompt_set_id', 'text_hash', name=op.f('uq_prompts_prompt_set_id_text_hash'))
    )
    op.create_table('training_metrics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('logged_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['training_runs.id'], name=op.f('fk_training_metrics_run_id_training_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_metrics')),
    sa.UniqueConstraint('run_id', 'step', 'name', name=op.f('uq_training_metrics_run_id_step_name'))
    )
    op.create_table('evaluations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('prompt_set_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('config', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('summary', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('flags', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('worker', sa.String(length=200), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'running', 'done', 'failed')", name=op.f('ck_evaluations_status_valid')),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_evaluations_checkpoint_id_checkpoints'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['prompt_set_id'], ['prompt_sets.id'], name=op.f('fk_evaluations_prompt_set_id_prompt_sets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluations')),
    sa.UniqueConstraint('checkpoint_id', 'prompt_set_id', name=op.f('uq_evaluations_checkpoint_id_prompt_set_id'))
    )
    op.create_table('generations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('prompt_id', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('token_count', sa.Integer(), nullable=False),
    sa.Column('finish_reason', sa.String(length=16), nullable=False),
    sa.Column('backend', sa.String(length=50), nullable=False),
    sa.Column('model_ref', sa.String(length=1000), nullable=True),
    sa.Column('sampling_params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('reward_score', sa.Float(), nullable=True),
    sa.Column('kl_k1', sa.Float(), nullable=True),
    sa.Column('kl_k3', sa.Float(), nullable=True),
    sa.Column('diagnostics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint("finish_reason IN ('stop', 'length')", name=op.f('ck_generations_finish_reason_valid')),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_generations_checkpoint_id_checkpoints'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['prompt_id'], ['prompts.id'], name=op.f('fk_generations_prompt_id_prompts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_generations')),
    sa.UniqueConstraint('checkpoint_id', 'prompt_id', 'seed', name=op.f('uq_generations_checkpoint_id_prompt_id_seed'))
    )
    op.create_table('studies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('reference_checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('prompt_set_id', sa.Integer(), nullable=False),
    sa.Column('raters_per_comparison', sa.Integer(), nullable=False),
    sa.Column('attention_check_rate', sa.Float(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint("status IN ('draft', 'running', 'closed')", name=op.f('ck_studies_status_valid')),
    sa.CheckConstraint('attention_check_rate >= 0 AND attention_check_rate <= 1', name=op.f('ck_studies_attention_rate_range')),
    sa.CheckConstraint('raters_per_comparison >= 1', name=op.f('ck_studies_raters_positive')),
    sa.ForeignKeyConstraint(['prompt_set_id'], ['prompt_sets.id'], name=op.f('fk_studies_prompt_set_id_prompt_sets')),
    sa.ForeignKeyConstraint(['reference_checkpoint_id'], ['checkpoints.id'], name=op.f('fk_studies_reference_checkpoint_id_checkpoints')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_studies')),
    sa.UniqueConstraint('name', name=op.f('uq_studies_name'))
    )
    op.create_table('comparisons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('prompt_id', sa.Integer(), nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('candidate_generation_id', sa.Integer(), nullable=False),
    sa.Column('reference_generation_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('degraded_text', sa.Text(), nullable=True),
    sa.Column('degradation', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint("kind IN ('normal', 'attention')", name=op.f('ck_comparisons_kind_valid')),
    sa.ForeignKeyConstraint(['candidate_generation_id'], ['generations.id'], name=op.f('fk_comparisons_candidate_generation_id_generations')),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_comparisons_checkpoint_id_checkpoints')),
    sa.ForeignKeyConstraint(['prompt_id'], ['prompts.id'], name=op.f('fk_comparisons_prompt_id_prompts')),
    sa.ForeignKeyConstraint(['reference_generation_id'], ['generations.id'], name=op.f('fk_comparisons_reference_generation_id_generations')),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_comparisons_study_id_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comparisons')),
    sa.UniqueConstraint('study_id', 'prompt_id', 'checkpoint_id', 'kind', name=op.f('uq_comparisons_study_id_prompt_id_checkpoint_id_kind'))
    )
    op.create_table('recommendations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=True),
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=100), nullable=False),
    sa.Column('rationale', sa.Text(), nullable=False),
    sa.Column('evidence', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_recommendations_checkpoint_id_checkpoints')),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_recommendations_study_id_studies'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recommendations'))
    )
    op.create_table('study_checkpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_study_checkpoints_checkpoint_id_checkpoints')),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_study_checkpoints_study_id_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study_checkpoints')),
    sa.UniqueConstraint('study_id', 'checkpoint_id', name=op.f('uq_study_checkpoints_study_id_checkpoint_id'))
    )
    op.create_table('study_raters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['rater_id'], ['raters.id'], name=op.f('fk_study_raters_rater_id_raters')),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_study_raters_study_id_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study_raters')),
    sa.UniqueConstraint('study_id', 'rater_id', name=op.f('uq_study_raters_study_id_rater_id'))
    )
    op.create_table('assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=64), nullable=False),
    sa.Column('comparison_id', sa.Integer(), nullable=False),
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.Column('checkpoint_side', sa.String(length=8), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('skip_reason', sa.Text(), nullable=True),
    sa.Column('served_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint("checkpoint_side IN ('left', 'right')", name=op.f('ck_assignments_checkpoint_side_valid')),
    sa.CheckConstraint("status IN ('pending', 'served', 'skipped', 'done')", name=op.f('ck_assignments_status_valid')),
    sa.ForeignKeyConstraint(['comparison_id'], ['comparisons.id'], name=op.f('fk_assignments_comparison_id_comparisons'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rater_id'], ['raters.id'], name=op.f('fk_assignments_rater_id_raters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignments')),
    sa.UniqueConstraint('comparison_id', 'rater_id', name=op.f('uq_assignments_comparison_id_rater_id')),
    sa.UniqueConstraint('public_id', name=op.f('uq_assignments_public_id'))
    )
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.create_index('ix_assignments_rater_queue', ['rater_id', 'status', 'position'], unique=False)

    op.create_table('judgements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('choice', sa.String(length=16), nullable=False),
    sa.Column('rationale', sa.Text(), nullable=True),
    sa.Column('time_on_item_ms', sa.Integer(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint("choice IN ('left', 'right', 'tie', 'both_bad')", name=op.f('ck_judgements_choice_valid')),
    sa.CheckConstraint('time_on_item_ms IS NULL OR time_on_item_ms >= 0', name=op.f('ck_judgements_time_nonnegative')),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_judgements_assignment_id_assignments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_judgements')),
    sa.UniqueConstraint('assignment_id', name=op.f('uq_judgements_assignment_id')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_judgements_idempotency_key'))
    )
    


def downgrade() -> None:
    
    op.drop_table('judgements')
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_index('ix_assignments_rater_queue')

    op.drop_table('assignments')
    op.drop_table('study_raters')
    op.drop_table('study_checkpoints')
    op.drop_table('recommendations')
    op.drop_table('comparisons')
    op.drop_table('studies')
    op.drop_table('generations')
    op.drop_table('evaluations')
    op.drop_table('training_metrics')
    op.drop_table('prompts')
    op.drop_table('checkpoints')
    op.drop_table('training_runs')
    op.drop_table('raters')
    op.drop_table('prompt_sets')
    
