"""Typed SQLAlchemy 2 models for the whole domain.

Enumerated columns are short strings guarded by CHECK constraints rather than native enums, so the
same migration runs on PostgreSQL and SQLite and adding a value is a one-line migration.
Uniqueness that the product promises (one judgement per assignment, one assignment per comparison
and rater, one checkpoint per run and step) is enforced here, by the database, not only in code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from judging.data.db import Base, JSONType

RUN_ALGORITHMS = ("ppo", "dpo", "sft", "rm", "external", "best-of-n")
RUN_STATUSES = ("pending", "running", "finished", "stopped", "failed")
CHECKPOINT_KINDS = ("base", "trained")
CHECKPOINT_STATUSES = ("registered", "evaluating", "evaluated", "failed")
SPLITS = ("train", "heldout")
FINISH_REASONS = ("stop", "length")
EVALUATION_STATUSES = ("pending", "running", "done", "failed")
STUDY_STATUSES = ("draft", "running", "closed")
COMPARISON_KINDS = ("normal", "attention")
ASSIGNMENT_STATUSES = ("pending", "served", "skipped", "done", "flagged", "released", "parked")
QUEUED_STATUSES = ASSIGNMENT_STATUSES[:3]
"""Still waiting in a rater's queue; done and flagged are finished, released moved on."""
"""flagged: marked cannot-judge by its rater; released: handed back to the pool; parked: held
back by adaptive allocation (its checkpoint left contention, its prompt is beyond the served
frontier, or the study is decided). A parked item is never served, still takes the verdict of a
rater who had it on screen, and is opened again when the allocation changes (resume)."""
ALLOCATIONS = ("uniform", "adaptive")
FLAG_KINDS = ("broken", "unsafe", "other")
AUTO_CHOICES = ("tie",)
AUDIT_ACTIONS = (
    "reassign",
    "rebalance",
    "withdraw",
    "lease_expired",
    "skip_released",
    "flagged",
    "auto_tie",
    "closed",
    "rater_left",
)
SIDES = ("left", "right")
CHOICES = ("left", "right", "tie", "both_bad")
ROLES = ("rater", "admin")


def _one_of(column: str, values: tuple[str, ...]) -> CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=f"{column}_valid")


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class TrainingRun(Base):
    """One training job (PPO, DPO, SFT, reward model) or an external source of checkpoints."""

    __tablename__ = "training_runs"
    __table_args__ = (_one_of("algorithm", RUN_ALGORITHMS), _one_of("status", RUN_STATUSES))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    base_model: Mapped[str] = mapped_column(String(500))
    reward_model: Mapped[str | None] = mapped_column(String(500))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    """The fully resolved config (YAML plus CLI overrides) the run was started with."""
    output_dir: Mapped[str | None] = mapped_column(String(1000))
    compute_budget: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    """Limits such as {"max_steps": 40, "max_seconds": 1200}."""
    compute_spent_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    device: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    checkpoints: Mapped[list[Checkpoint]] = relationship(
        back_populates="run", order_by="Checkpoint.step", cascade="all, delete-orphan"
    )


class Checkpoint(Base):
    """A saved policy at one training step; step 0 of kind `base` stands for the untrained model."""

    __tablename__ = "checkpoints"
    __table_args__ = (
        UniqueConstraint("run_id", "step"),
        _one_of("kind", CHECKPOINT_KINDS),
        _one_of("status", CHECKPOINT_STATUSES),
        CheckConstraint("step >= 0", name="step_nonnegative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16), default="trained")
    path: Mapped[str] = mapped_column(String(1000))
    checksum: Mapped[str | None] = mapped_column(String(64))
    """sha256 over the checkpoint's files, so a moved or overwritten folder is noticed."""
    status: Mapped[str] = mapped_column(String(16), default="registered")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    """Train metrics at this step (TRL's objective/*, losses, response length, truncation)."""
    kl_coef: Mapped[float | None] = mapped_column(Float)
    compute_spent_seconds: Mapped[float | None] = mapped_column(Float)
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()

    run: Mapped[TrainingRun] = relationship(back_populates="checkpoints")

    @property
    def label(self) -> str:
        return f"{self.run.name}@{self.step}" if self.kind == "trained" else f"{self.run.name}@base"


class TrainingMetric(Base):
    """One scalar logged at one step: the time series between checkpoints."""

    __tablename__ = "training_metrics"
    __table_args__ = (UniqueConstraint("run_id", "step", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)
    logged_at: Mapped[datetime] = _now()


class PromptSet(Base):
    """A named collection of single-turn prompts, either for training or held out for judging."""

    __tablename__ = "prompt_sets"
    __table_args__ = (_one_of("split", SPLITS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    split: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = _now()

    prompts: Mapped[list[Prompt]] = relationship(
        back_populates="prompt_set", order_by="Prompt.position", cascade="all, delete-orphan"
    )


class Prompt(Base):
    __tablename__ = "prompts"
    __table_args__ = (
        UniqueConstraint("prompt_set_id", "text_hash"),
        UniqueConstraint("prompt_set_id", "external_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_set_id: Mapped[int] = mapped_column(ForeignKey("prompt_sets.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    external_id: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(100))

    prompt_set: Mapped[PromptSet] = relationship(back_populates="prompts")


class Generation(Base):
    """One response to one prompt by one checkpoint (or the base), with its scores."""

    __tablename__ = "generations"
    __table_args__ = (
        UniqueConstraint("checkpoint_id", "prompt_id", "seed"),
        _one_of("finish_reason", FINISH_REASONS),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"))
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer)
    finish_reason: Mapped[str] = mapped_column(String(16))
    backend: Mapped[str] = mapped_column(String(50))
    """transformers, vllm, vllm-server or import."""
    model_ref: Mapped[str | None] = mapped_column(String(1000))
    """Which weights produced it: base model path plus adapter path, or a served model name."""
    sampling_params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    """Every setting the response depends on: temperature, top_p, max_new_tokens, seed, dtype."""
    settings_key: Mapped[str | None] = mapped_column(String(16))
    """Hash of sampling_params: rows with different keys are never aggregated together."""
    seed: Mapped[int] = mapped_column(Integer, default=0)
    replicate: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """0 for the response every checkpoint shares a seed with; 1.. for extra base samples."""
    reward_score: Mapped[float | None] = mapped_column(Float)
    """Score by the reward model PPO optimised (the run's reward model)."""
    eval_reward_score: Mapped[float | None] = mapped_column(Float)
    """Score by an evaluation reward model PPO never saw (None when none is configured)."""
    scored_by: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    """What produced the scores: reward_model, reward_dtype, eval_reward_model,
    eval_reward_dtype (`judging.evaluation.results.Scorers`). Rows of two scorers are never
    averaged, and a resume with other scorers is refused. NULL on rows from before 0113."""
    reward_at_train_length: Mapped[float | None] = mapped_column(Float)
    """reward_score of the response's first `ppo.response_length` tokens: the reward PPO
    optimised (None when the run has no PPO response length)."""
    eval_reward_at_train_length: Mapped[float | None] = mapped_column(Float)
    """The same for the evaluation reward model."""
    kl_k1: Mapped[float | None] = mapped_column(Float)
    """Sum over response tokens of log p_ckpt - log p_base (k1 estimator)."""
    kl_k3: Mapped[float | None] = mapped_column(Float)
    """Sum over response tokens of (r - 1) - log r with r = p_base / p_ckpt (k3 estimator)."""
    diagnostics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = _now()

    checkpoint: Mapped[Checkpoint] = relationship()
    prompt: Mapped[Prompt] = relationship()


class GoldScore(Base):
    """The gold preference's score of one generation (ground-truth simulation only).

    Stored when a study is filled by simulated raters, so the study page can draw the gold
    curve beside the (simulated) human one and anyone can check a verdict against it.
    """

    __tablename__ = "gold_scores"

    generation_id: Mapped[int] = mapped_column(
        ForeignKey("generations.id", ondelete="CASCADE"), primary_key=True
    )
    scorer: Mapped[str] = mapped_column(String(100))
    """The gold scorer and its weights (`judging.gold.scorer_id`): different ones never mix."""
    total: Mapped[float] = mapped_column(Float)
    parts: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    """Relevance and each weighted penalty, so a score can be explained term by term."""
    created_at: Mapped[datetime] = _now()


class Evaluation(Base):
    """The job that fills a checkpoint's generations on a prompt set, then its aggregates."""

    __tablename__ = "evaluations"
    __table_args__ = (
        UniqueConstraint("checkpoint_id", "prompt_set_id"),
        _one_of("status", EVALUATION_STATUSES),
        CheckConstraint("replicates >= 1", name="replicates_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"))
    prompt_set_id: Mapped[int] = mapped_column(ForeignKey("prompt_sets.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    replicates: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    """Responses per prompt: replicate 0 uses the shared seed, replicates 1.. use disjoint seeds.

    Extra replicates are wanted for the base, so every checkpoint of a study is compared against
    its own independently sampled base response (see docs/blind-judging.md).
    """
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    """Aggregates (mean reward, KL with CI, diagnostics); written only when every row exists."""
    flags: Mapped[list[str] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()

    checkpoint: Mapped[Checkpoint] = relationship()


class Rater(Base):
    """A person who judges; logs in through an invite link whose token is stored only hashed."""

    __tablename__ = "raters"
    __table_args__ = (_one_of("role", ROLES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="rater")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = _now()
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Signed into every session cookie; bumping it (revoke, re-invite, sign-out) ends them all.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When the outstanding invite link stops working; NULL once used (links are one-time).
    invite_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Study(Base):
    """Which checkpoints are judged against which reference, on which prompts, by whom."""

    __tablename__ = "studies"
    __table_args__ = (
        _one_of("status", STUDY_STATUSES),
        CheckConstraint("raters_per_comparison >= 1", name="raters_positive"),
        CheckConstraint("base_reuse >= 1", name="base_reuse_positive"),
        CheckConstraint(
            "attention_check_rate >= 0 AND attention_check_rate <= 1", name="attention_rate_range"
        ),
        CheckConstraint(
            "min_attention_pass_rate >= 0 AND min_attention_pass_rate <= 1",
            name="attention_pass_range",
        ),
        _one_of("allocation", ALLOCATIONS),
        CheckConstraint(
            "allocation_target > 0.5 AND allocation_target < 1", name="allocation_target_range"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    reference_checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id"))
    prompt_set_id: Mapped[int] = mapped_column(ForeignKey("prompt_sets.id"))
    raters_per_comparison: Mapped[int] = mapped_column(Integer, default=2)
    attention_check_rate: Mapped[float] = mapped_column(Float, default=0.05)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="running")
    guidelines: Mapped[str | None] = mapped_column(Text)
    """Rater instructions (markdown): shown on a rater's first visit, then behind a link."""
    min_attention_pass_rate: Mapped[float] = mapped_column(Float, default=0.8, server_default="0.8")
    """Raters whose attention-check pass rate is below this are flagged on the QC page."""
    attention_checks_missing: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Attention checks the rate asked for but that could not be built (`attention_warning`)."""
    base_reuse: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    """Comparisons (of different checkpoints, one prompt) that may share one base response; they
    go to disjoint raters. 1: every comparison has a base response of its own."""
    allocation: Mapped[str] = mapped_column(String(16), default="uniform", server_default="uniform")
    """uniform: every comparison is asked for. adaptive: `judging.studies.allocation` serves only
    the comparisons of checkpoints still in contention, prompt by prompt in a fixed random order,
    and stops once the study is decided."""
    allocation_target: Mapped[float] = mapped_column(Float, default=0.9, server_default="0.9")
    """Adaptive: decided once P(the leader is within delta of the best) reaches this."""
    allocation_contenders: Mapped[list[int] | None] = mapped_column(JSONType)
    """Adaptive: checkpoint ids still served, as of the last recomputation (empty once decided)."""
    allocation_frontier: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Adaptive: prompts with `Comparison.prompt_rank` below this are open to the contenders."""
    allocation_batch: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    """Adaptive: new verdicts after `allocation_checked_at` that make a recomputation due."""
    allocation_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Adaptive: when the contention state was last recomputed."""
    allocation_leader_id: Mapped[int | None] = mapped_column(Integer)
    """Adaptive: the leading checkpoint's id at the last recomputation (a plain id: a key to
    checkpoints would make every join of studies to checkpoints ambiguous)."""
    allocation_p: Mapped[float | None] = mapped_column(Float)
    """Adaptive: the leader's P(within delta of the best) at the last recomputation."""
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Adaptive: when the stopping rule was met (None: not decided, or resumed since)."""
    decided_after: Mapped[int | None] = mapped_column(Integer)
    """Adaptive: live verdicts on normal comparisons when the study was decided."""
    created_at: Mapped[datetime] = _now()

    reference: Mapped[Checkpoint] = relationship()
    prompt_set: Mapped[PromptSet] = relationship()


class StudyCheckpoint(Base):
    __tablename__ = "study_checkpoints"
    __table_args__ = (UniqueConstraint("study_id", "checkpoint_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id"))


class StudyRater(Base):
    __tablename__ = "study_raters"
    __table_args__ = (UniqueConstraint("study_id", "rater_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"))
    guidelines_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the rater was first shown the study's guidelines (None: show them next)."""
    joined_at: Mapped[datetime] = _now()
    """When the rater was added: a rater never seen since counts as idle from here."""


class RaterExclusion(Base):
    """A rater's verdicts left out of a study's statistics, by whom and when; reversible.

    Restoring sets `restored_at` (the row stays as the record); at most one active exclusion per
    study and rater.
    """

    __tablename__ = "rater_exclusions"
    __table_args__ = (
        Index(
            "uq_rater_exclusions_active",
            "study_id",
            "rater_id",
            unique=True,
            postgresql_where=text("restored_at IS NULL"),
            sqlite_where=text("restored_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    excluded_by_id: Mapped[int | None] = mapped_column(ForeignKey("raters.id", ondelete="SET NULL"))
    excluded_at: Mapped[datetime] = _now()
    restored_by_id: Mapped[int | None] = mapped_column(ForeignKey("raters.id", ondelete="SET NULL"))
    restored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Comparison(Base):
    """A checkpoint's response against the reference's response to the same prompt.

    Attention checks pair a normal response with a deliberately degraded copy; the degraded text
    lives here because no model wrote it.
    """

    __tablename__ = "comparisons"
    __table_args__ = (
        UniqueConstraint("study_id", "prompt_id", "checkpoint_id", "kind"),
        # The target of assignments' (comparison_id, study_id) key: an assignment's study is
        # always its comparison's.
        UniqueConstraint("id", "study_id"),
        Index("ix_comparisons_study_id", "study_id"),
        _one_of("kind", COMPARISON_KINDS),
        CheckConstraint("auto_choice IS NULL OR auto_choice IN ('tie')", name="auto_choice_valid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"))
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id"))
    candidate_generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id"))
    reference_generation_id: Mapped[int | None] = mapped_column(ForeignKey("generations.id"))
    kind: Mapped[str] = mapped_column(String(16), default="normal")
    degraded_text: Mapped[str | None] = mapped_column(Text)
    degradation: Mapped[str | None] = mapped_column(String(32))
    auto_choice: Mapped[str | None] = mapped_column(String(16))
    """Set when no human is asked: identical texts on both sides are recorded as a tie."""
    closed_reason: Mapped[str | None] = mapped_column(Text)
    """Why the comparison ends with fewer than N human verdicts (identical texts, flagged...)."""
    prompt_rank: Mapped[int | None] = mapped_column(Integer)
    """Adaptive studies: the prompt's place in the study's random prompt order, fixed at
    creation from the study seed and the same for every checkpoint (None in uniform studies)."""
    created_at: Mapped[datetime] = _now()

    prompt: Mapped[Prompt] = relationship()
    checkpoint: Mapped[Checkpoint] = relationship()
    candidate: Mapped[Generation] = relationship(foreign_keys=[candidate_generation_id])
    reference: Mapped[Generation | None] = relationship(foreign_keys=[reference_generation_id])


_QUEUED_SQL = "status IN ({})".format(", ".join(f"'{s}'" for s in QUEUED_STATUSES))


class Assignment(Base):
    """One comparison shown to one rater, with the side the checkpoint was drawn to."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("comparison_id", "rater_id"),
        ForeignKeyConstraint(
            ["comparison_id", "study_id"],
            ["comparisons.id", "comparisons.study_id"],
            ondelete="CASCADE",
        ),
        _one_of("status", ASSIGNMENT_STATUSES),
        _one_of("checkpoint_side", SIDES),
        CheckConstraint(
            "flag_kind IS NULL OR flag_kind IN ('broken', 'unsafe', 'other')",
            name="flag_kind_valid",
        ),
        Index("ix_assignments_rater_queue", "rater_id", "status", "position"),
        # The next item: the rater's first queued one in study, position order, read in order.
        Index(
            "ix_assignments_rater_next",
            "rater_id",
            "study_id",
            "position",
            "id",
            postgresql_where=text(_QUEUED_SQL),
            sqlite_where=text(_QUEUED_SQL),
        ),
        # Every request for work looks for served items past their lease.
        Index(
            "ix_assignments_served_lease",
            "served_at",
            postgresql_where=text("status = 'served'"),
            sqlite_where=text("status = 'served'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(64), unique=True)
    """Opaque id used in URLs and forms; reveals nothing about the comparison."""
    comparison_id: Mapped[int] = mapped_column()
    study_id: Mapped[int] = mapped_column()
    """The comparison's study, kept equal by the composite key to comparisons: a rater's queue
    is read without going through the study's comparisons."""
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"))
    checkpoint_side: Mapped[str] = mapped_column(String(8))
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    skip_reason: Mapped[str | None] = mapped_column(Text)
    skip_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    flag_kind: Mapped[str | None] = mapped_column(String(16))
    """broken or unsafe or other: the rater says it cannot be judged (see flag_reason)."""
    flag_reason: Mapped[str | None] = mapped_column(Text)
    served_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()

    comparison: Mapped[Comparison] = relationship()
    rater: Mapped[Rater] = relationship()


class Judgement(Base):
    """A rater's verdict on one assignment; at most one live (not withdrawn) per assignment.

    Undo never deletes: it sets `withdrawn_at`, and every statistic and export reads live rows only.
    """

    __tablename__ = "judgements"
    __table_args__ = (
        Index(
            "uq_judgements_live_assignment",
            "assignment_id",
            unique=True,
            postgresql_where=text("withdrawn_at IS NULL"),
            sqlite_where=text("withdrawn_at IS NULL"),
        ),
        # The rater's verdict still inside the undo window: a scan of the last minutes only.
        Index(
            "ix_judgements_live_created",
            "created_at",
            postgresql_where=text("withdrawn_at IS NULL"),
            sqlite_where=text("withdrawn_at IS NULL"),
        ),
        UniqueConstraint("idempotency_key"),
        _one_of("choice", CHOICES),
        CheckConstraint("time_on_item_ms IS NULL OR time_on_item_ms >= 0", name="time_nonnegative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    choice: Mapped[str] = mapped_column(String(16))
    rationale: Mapped[str | None] = mapped_column(Text)
    time_on_item_ms: Mapped[int | None] = mapped_column(Integer)
    idempotency_key: Mapped[str] = mapped_column(String(100))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()

    assignment: Mapped[Assignment] = relationship()


class AuditEntry(Base):
    """Who moved or withdrew what, when: admin moves, released leases, undone verdicts."""

    __tablename__ = "audit_log"
    __table_args__ = (
        _one_of("action", AUDIT_ACTIONS),
        Index("ix_audit_log_study_created", "study_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("raters.id", ondelete="SET NULL"))
    """The admin or rater who acted; None for the system (expired lease, identical texts)."""
    action: Mapped[str] = mapped_column(String(32))
    assignment_id: Mapped[int | None] = mapped_column(
        ForeignKey("assignments.id", ondelete="SET NULL")
    )
    judgement_id: Mapped[int | None] = mapped_column(
        ForeignKey("judgements.id", ondelete="SET NULL")
    )
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = _now()


class Recommendation(Base):
    """The exported best-checkpoint choice, with the evidence it rests on."""

    __tablename__ = "recommendations"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id", ondelete="SET NULL"))
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id"))
    method: Mapped[str] = mapped_column(String(100))
    rationale: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = _now()

    checkpoint: Mapped[Checkpoint] = relationship()
