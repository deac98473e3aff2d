"""Evaluation results: stored generations, per-checkpoint summaries and flags (no torch here).

Generation rows are written batch by batch and are never duplicated: (checkpoint, prompt, seed) is
unique, and a resumed job asks `done_prompt_ids` which prompts it may skip. The summary is written
only when every prompt of the job has its row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data.models import Checkpoint, Evaluation, Generation, Prompt
from judging.evaluation.config import EvalConfig
from judging.evaluation.diagnostics import (
    ResponseRecord,
    raise_flags,
    response_diagnostics,
    summarize,
)
from judging.evaluation.diagnostics import with_growth as add_growth
from judging.evaluation.queue import mark_done


@dataclass(frozen=True)
class NewGeneration:
    """One response to store, with whatever scores were computed for it."""

    prompt_id: int
    seed: int
    text: str
    token_count: int
    finish_reason: str
    reward: float | None = None
    kl_k1: float | None = None
    kl_k3: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    replicate: int = 0


def job_prompts(session: Session, prompt_set_id: int, limit: int | None = None) -> list[Prompt]:
    query = select(Prompt).where(Prompt.prompt_set_id == prompt_set_id).order_by(Prompt.position)
    return list(session.scalars(query.limit(limit) if limit else query))


REPLICATE_SEED_STRIDE = 1_000_000
"""Replicate r >= 1 samples with seed + r * stride + position: never a seed replicate 0 uses
(prompt sets stay far below a million prompts), so an extra base sample never repeats the text
a checkpoint drew with the shared seed."""


def prompt_seed(config: EvalConfig, prompt: Prompt, replicate: int = 0) -> int:
    """Replicate 0: the same seed for the base and every checkpoint (paired KL and reward).

    Replicates 1.. are extra, independent samples (wanted for the base: a blind study pairs each
    checkpoint with its own base response), on seeds disjoint from replicate 0's.
    """
    return config.seed + replicate * REPLICATE_SEED_STRIDE + prompt.position


def done_prompt_ids(
    session: Session,
    checkpoint_id: int,
    prompts: Sequence[Prompt],
    config: EvalConfig,
    replicate: int = 0,
) -> set[int]:
    """Prompts of the job that already have a row for their seed (a resumed job skips them)."""
    seeds = {p.id: prompt_seed(config, p, replicate) for p in prompts}
    rows = session.execute(
        select(Generation.prompt_id, Generation.seed).where(
            Generation.checkpoint_id == checkpoint_id, Generation.prompt_id.in_(list(seeds))
        )
    ).all()
    return {pid for pid, seed in rows if seeds.get(pid) == seed}


def store_generations(
    session: Session,
    *,
    checkpoint_id: int,
    items: Sequence[NewGeneration],
    backend: str,
    model_ref: str | None,
    sampling_params: dict[str, Any],
    config: EvalConfig,
) -> list[Generation]:
    """Add one batch of generations with their per-response diagnostics."""
    options = config.diagnostics
    rows = [
        Generation(
            checkpoint_id=checkpoint_id,
            prompt_id=item.prompt_id,
            seed=item.seed,
            replicate=item.replicate,
            text=item.text,
            token_count=item.token_count,
            finish_reason=item.finish_reason,
            backend=backend,
            model_ref=model_ref,
            sampling_params=sampling_params,
            reward_score=item.reward,
            kl_k1=item.kl_k1,
            kl_k3=item.kl_k3,
            diagnostics={
                **response_diagnostics(
                    item.text,
                    seq_rep=options.seq_rep_n,
                    refusal_prefixes=options.refusal_prefixes,
                    sycophancy_markers=options.sycophancy_markers,
                ),
                **item.extra,
            },
        )
        for item in items
    ]
    session.add_all(rows)
    session.flush()
    return rows


def _records(
    session: Session, checkpoint_id: int, prompt_ids: Sequence[int]
) -> list[ResponseRecord]:
    rows = session.scalars(
        select(Generation)
        .where(
            Generation.checkpoint_id == checkpoint_id,
            Generation.prompt_id.in_(list(prompt_ids)),
            # Extra base samples are for studies; the aggregates stay on the shared seed.
            Generation.replicate == 0,
        )
        .order_by(Generation.prompt_id, Generation.seed)
    )
    return [
        ResponseRecord(g.text, g.token_count, g.finish_reason, g.reward_score, g.kl_k1, g.kl_k3)
        for g in rows
    ]


def base_evaluation(session: Session, evaluation: Evaluation) -> Evaluation | None:
    """The finished evaluation of the same run's base checkpoint on the same prompt set."""
    return session.scalar(
        select(Evaluation)
        .join(Checkpoint, Checkpoint.id == Evaluation.checkpoint_id)
        .where(
            Checkpoint.run_id == evaluation.checkpoint.run_id,
            Checkpoint.kind == "base",
            Evaluation.prompt_set_id == evaluation.prompt_set_id,
            Evaluation.status == "done",
        )
    )


def _flags(summary: dict[str, object], config: EvalConfig) -> list[str]:
    limits = config.thresholds
    return raise_flags(summary, maximum=limits.max, minimum=limits.min)


def finalize(
    session: Session, evaluation: Evaluation, prompts: Sequence[Prompt], config: EvalConfig
) -> dict[str, object]:
    """Summarise every row of the job, add growth vs the base and flags, and mark it done."""
    options = config.diagnostics
    records = _records(session, evaluation.checkpoint_id, [p.id for p in prompts])
    summary = summarize(
        records,
        seq_rep=options.seq_rep_n,
        self_bleu_max_n=options.self_bleu_max_n,
        self_bleu_sample=options.self_bleu_sample,
        refusal_prefixes=options.refusal_prefixes,
        sycophancy_markers=options.sycophancy_markers,
    )
    summary["coverage"] = {"rows": len(records), "prompts": len(prompts)}
    if evaluation.checkpoint.kind == "base":
        summary = add_growth(summary, summary)
    else:
        base = base_evaluation(session, evaluation)
        summary = add_growth(summary, base.summary if base else None)
    mark_done(session, evaluation, summary=summary, flags=_flags(summary, config))
    if evaluation.checkpoint.kind == "base":
        refresh_growth(session, evaluation, config)
    return summary


def refresh_growth(session: Session, base: Evaluation, config: EvalConfig) -> int:
    """Fill length growth of sibling checkpoints that finished before their base did."""
    siblings = session.scalars(
        select(Evaluation)
        .join(Checkpoint, Checkpoint.id == Evaluation.checkpoint_id)
        .where(
            Checkpoint.run_id == base.checkpoint.run_id,
            Checkpoint.kind != "base",
            Evaluation.prompt_set_id == base.prompt_set_id,
            Evaluation.status == "done",
        )
    )
    count = 0
    for sibling in siblings:
        summary = add_growth(sibling.summary or {}, base.summary)
        sibling.summary = summary
        sibling.flags = _flags(summary, config)
        count += 1
    session.flush()
    return count
