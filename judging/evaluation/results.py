"""Evaluation results: stored generations, per-checkpoint summaries and flags (no torch here).

Generation rows are written batch by batch and are never duplicated: (checkpoint, prompt, seed) is
unique, and a resumed job asks `done_prompt_ids` which prompts it may skip. The summary is written
only when every prompt of the job has its row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data.models import Checkpoint, Evaluation, Generation, Prompt, TrainingRun
from judging.errors import ConfigError
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
    eval_reward: float | None = None


class SettingsMismatchError(ConfigError):
    """Rows generated under other sampling settings would be mixed into one aggregate."""


def generation_settings(config: EvalConfig) -> dict[str, Any]:
    """Everything a sampled response depends on besides the weights and the prompt."""
    s = config.sampling
    return {
        "temperature": s.temperature,
        "top_p": s.top_p,
        "max_new_tokens": s.max_new_tokens,
        "seed": config.seed,
        "dtype": config.generation_dtype if config.backend == "transformers" else config.vllm.dtype,
        # Which draw a seed gives: the transformers sampler changed from per-row multinomial to
        # inverse CDF (same distribution, other samples), so rows of the two are not one replicate.
        "sampler": "inverse-cdf" if config.backend == "transformers" else config.backend,
    }


def settings_key(settings: dict[str, Any]) -> str:
    """A short stable hash of the settings (rows with equal keys may be averaged together)."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


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
    """Prompts of the job that already have a row for their seed (a resumed job skips them).

    Rows of the job's prompts generated under other settings are refused, not silently kept
    beside new ones: the caller fails the job before generating anything.
    """
    seeds = {p.id: prompt_seed(config, p, replicate) for p in prompts}
    key = settings_key(generation_settings(config))
    rows = session.execute(
        select(Generation.prompt_id, Generation.seed, Generation.settings_key).where(
            Generation.checkpoint_id == checkpoint_id, Generation.prompt_id.in_(list(seeds))
        )
    ).all()
    other = [row for row in rows if row.settings_key != key]
    if other:
        raise SettingsMismatchError(
            f"checkpoint {checkpoint_id} has {len(other)} responses generated with other sampling "
            f"settings (key {other[0].settings_key}, now {key}); evaluate with the same settings "
            "or delete them first"
        )
    return {pid for pid, seed, _ in rows if seeds.get(pid) == seed}


def _scored_by(evaluation: Evaluation) -> tuple[Any, ...]:
    """What a job's scores depend on besides the weights and the sampling settings."""
    config = evaluation.config or {}
    reward = config.get("reward_model") or evaluation.checkpoint.run.reward_model
    return (reward, config.get("eval_reward_model"), config.get("reward_dtype"))


def copy_twin_base_rows(
    session: Session,
    evaluation: Evaluation,
    prompts: Sequence[Prompt],
    config: EvalConfig,
    replicate: int = 0,
) -> int:
    """Fill a base checkpoint's missing rows from another run's base with the same weights.

    A sweep's runs share one base model: each run's base checkpoint would generate the very same
    responses (same weights, seeds and settings) and get the same scores (when the reward models
    and their dtype agree), so the second one copies the first one's rows instead of spending
    minutes of CPU on them. Only rows under the job's own settings key and seeds are copied;
    returns how many. The job's config must already be stored on `evaluation`.
    """
    checkpoint = evaluation.checkpoint
    if checkpoint.kind != "base":
        return 0
    key = settings_key(generation_settings(config))
    seeds = {p.id: prompt_seed(config, p, replicate) for p in prompts}
    have = done_prompt_ids(session, checkpoint.id, prompts, config, replicate)
    wanted = {pid: seed for pid, seed in seeds.items() if pid not in have}
    if not wanted:
        return 0
    twins = session.scalars(
        select(Evaluation)
        .join(Checkpoint, Checkpoint.id == Evaluation.checkpoint_id)
        .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
        .where(
            Checkpoint.kind == "base",
            Checkpoint.id != checkpoint.id,
            Checkpoint.path == checkpoint.path,
            TrainingRun.base_model == checkpoint.run.base_model,
            Evaluation.prompt_set_id == evaluation.prompt_set_id,
        )
        .order_by(Evaluation.id)
    )
    copied = 0
    for twin in twins:
        if _scored_by(twin) != _scored_by(evaluation):
            continue
        rows = session.scalars(
            select(Generation).where(
                Generation.checkpoint_id == twin.checkpoint_id,
                Generation.prompt_id.in_(list(wanted)),
                Generation.settings_key == key,
                Generation.replicate == replicate,
            )
        )
        for row in rows:
            if wanted.get(row.prompt_id) != row.seed:
                continue
            del wanted[row.prompt_id]
            session.add(_copy(row, checkpoint.id))
            copied += 1
    session.flush()
    return copied


def _copy(row: Generation, checkpoint_id: int) -> Generation:
    columns = Generation.__table__.columns.keys()
    values = {c: getattr(row, c) for c in columns if c not in ("id", "created_at")}
    return Generation(**{**values, "checkpoint_id": checkpoint_id})


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
            settings_key=settings_key(sampling_params),
            reward_score=item.reward,
            eval_reward_score=item.eval_reward,
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
) -> tuple[list[ResponseRecord], str | None]:
    """The rows to summarise and their one settings key; mixed keys are refused."""
    rows = list(
        session.scalars(
            select(Generation)
            .where(
                Generation.checkpoint_id == checkpoint_id,
                Generation.prompt_id.in_(list(prompt_ids)),
                # Extra base samples are for studies; the aggregates stay on the shared seed.
                Generation.replicate == 0,
            )
            .order_by(Generation.prompt_id, Generation.seed)
        )
    )
    keys = sorted({str(g.settings_key) for g in rows})
    if len(keys) > 1:
        raise SettingsMismatchError(
            f"checkpoint {checkpoint_id} has responses from {len(keys)} different sampling "
            f"settings ({', '.join(keys)}); they are not averaged together"
        )
    records = [
        ResponseRecord(
            g.text,
            g.token_count,
            g.finish_reason,
            g.reward_score,
            g.kl_k1,
            g.kl_k3,
            g.eval_reward_score,
        )
        for g in rows
    ]
    return records, rows[0].settings_key if rows else None


def base_evaluation(session: Session, evaluation: Evaluation) -> Evaluation | None:
    """The evaluation of the same run's base checkpoint on the same prompt set, once it has a
    summary: finished, or re-queued only for extra samples (blind judging's base responses),
    whose summary stays on the complete replicate 0. Invalidated weights clear the summary."""
    candidates = session.scalars(
        select(Evaluation)
        .join(Checkpoint, Checkpoint.id == Evaluation.checkpoint_id)
        .where(
            Checkpoint.run_id == evaluation.checkpoint.run_id,
            Checkpoint.kind == "base",
            Evaluation.prompt_set_id == evaluation.prompt_set_id,
        )
    )
    return next((e for e in candidates if e.status == "done" or e.summary), None)


def _flags(summary: dict[str, object], config: EvalConfig) -> list[str]:
    return raise_flags(summary, maximum=config.limits("max"), minimum=config.limits("min"))


def _growth(summary: dict[str, object], base: dict[str, object] | None) -> dict[str, object]:
    """Growth vs the base only when both were generated under the same settings."""
    if base is not None and base.get("settings_key") != summary.get("settings_key"):
        out = add_growth(summary, None)
        out["growth_note"] = "base evaluated with other sampling settings: no growth computed"
        return out
    out = add_growth(summary, base)
    out.pop("growth_note", None)
    return out


def finalize(
    session: Session, evaluation: Evaluation, prompts: Sequence[Prompt], config: EvalConfig
) -> dict[str, object]:
    """Summarise every row of the job, add growth vs the base and flags, and mark it done."""
    options = config.diagnostics
    records, key = _records(session, evaluation.checkpoint_id, [p.id for p in prompts])
    summary = summarize(
        records,
        seq_rep=options.seq_rep_n,
        self_bleu_max_n=options.self_bleu_max_n,
        self_bleu_sample=options.self_bleu_sample,
        refusal_prefixes=options.refusal_prefixes,
        sycophancy_markers=options.sycophancy_markers,
    )
    summary["coverage"] = {"rows": len(records), "prompts": len(prompts)}
    summary["settings_key"] = key
    sampling = config.sampling
    summary["kl_settings"] = {
        "temperature": sampling.temperature if sampling.temperature > 0 else 1.0,
        "exact": sampling.top_p == 1.0 and sampling.temperature > 0,
    }
    if evaluation.checkpoint.kind == "base":
        summary = _growth(summary, summary)
    else:
        base = base_evaluation(session, evaluation)
        summary = _growth(summary, base.summary if base else None)
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
        summary = _growth(sibling.summary or {}, base.summary)
        sibling.summary = summary
        sibling.flags = _flags(summary, config)
        count += 1
    session.flush()
    return count


def _pair_half(run: TrainingRun) -> str:
    rm = (run.config or {}).get("rm") or {}
    return str(rm.get("pair_half") or "all")


def default_eval_reward_model(session: Session, run: TrainingRun) -> str | None:
    """The newest reward model trained on the other half of the pairs than the run's RM.

    `rlhf train rm --set rm.pair_half=first` and `...=second` train on disjoint halves; PPO
    optimises one, the other judges its checkpoints. None when no such model is registered.
    """
    if not run.reward_model:
        return None
    rm_runs = list(
        session.scalars(
            select(TrainingRun)
            .join(Checkpoint, Checkpoint.run_id == TrainingRun.id)
            .where(TrainingRun.algorithm == "rm", Checkpoint.kind != "base")
            .order_by(Checkpoint.created_at.desc(), Checkpoint.id.desc())
        ).unique()
    )
    paths = {run_.id: [c.path for c in run_.checkpoints if c.kind != "base"] for run_ in rm_runs}
    trained = next((r for r in rm_runs if run.reward_model in paths[r.id]), None)
    half = _pair_half(trained) if trained else "all"
    if half == "all":
        return None
    for candidate in rm_runs:
        other = _pair_half(candidate)
        if other not in ("all", half) and candidate.base_model == run.base_model:
            return paths[candidate.id][-1]
    return None
