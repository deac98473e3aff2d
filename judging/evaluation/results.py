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

from judging.data.models import (
    Checkpoint,
    Evaluation,
    Generation,
    Prompt,
    PromptSet,
    TrainingRun,
)
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
    reward_at_train_length: float | None = None
    eval_reward_at_train_length: float | None = None


class SettingsMismatchError(ConfigError):
    """Rows generated under other sampling settings would be mixed into one aggregate."""


class ScorersMismatchError(SettingsMismatchError):
    """Rows scored by other reward models (or dtypes) than the job's would be mixed."""


@dataclass(frozen=True)
class Scorers:
    """What produced a row's scores besides the response itself (stored as `scored_by`)."""

    reward_model: str | None
    reward_dtype: str | None
    eval_reward_model: str | None
    eval_reward_dtype: str | None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "reward_model": self.reward_model,
            "reward_dtype": self.reward_dtype,
            "eval_reward_model": self.eval_reward_model,
            "eval_reward_dtype": self.eval_reward_dtype,
        }

    @classmethod
    def of(cls, data: dict[str, Any]) -> Scorers:
        return cls(*(data.get(k) for k in cls.__dataclass_fields__))


def job_scorers(config: EvalConfig, run: TrainingRun) -> Scorers:
    """The scorers a job uses; `config.reward_dtype` must already be resolved (not `auto`)."""
    reward = config.reward_model or run.reward_model or None
    judge = config.eval_reward_model or None
    return Scorers(
        reward,
        config.reward_dtype if reward else None,
        judge,
        config.reward_dtype if judge else None,
    )


def stored_config_scorers(evaluation: Evaluation) -> Scorers:
    """What scored rows written before `scored_by` existed: the job's config as it was stored."""
    config = evaluation.config or {}
    reward = config.get("reward_model") or evaluation.checkpoint.run.reward_model or None
    judge = config.get("eval_reward_model") or None
    dtype = config.get("reward_dtype")
    return Scorers(reward, dtype if reward else None, judge, dtype if judge else None)


def row_scorers(row_scored_by: dict[str, Any] | None, legacy: Scorers) -> Scorers:
    return Scorers.of(row_scored_by) if row_scored_by else legacy


def stored_scorers(
    session: Session, evaluation: Evaluation, prompts: Sequence[Prompt]
) -> dict[Scorers, int]:
    """How many of the job's stored replicate-0 rows each set of scorers produced.

    Call it before the job's config is overwritten: rows from before `scored_by` existed are
    taken to be scored as the stored config says.
    """
    legacy = stored_config_scorers(evaluation)
    rows = session.scalars(
        select(Generation.scored_by).where(
            Generation.checkpoint_id == evaluation.checkpoint_id,
            Generation.prompt_id.in_([p.id for p in prompts]),
            # The shared-seed rows summaries average; extra base samples (for studies) keep the
            # scorers they were generated with, recorded on each.
            Generation.replicate == 0,
        )
    ).all()
    counts: dict[Scorers, int] = {}
    for scored_by in rows:
        key = row_scorers(scored_by, legacy)
        counts[key] = counts.get(key, 0) + 1
    return counts


def _rescore_command(
    session: Session, evaluation: Evaluation, wanted: Scorers, stored: Scorers
) -> str | None:
    """The `rlhf rescore` call that brings rows scored by `stored` to `wanted` (None: none can)."""
    options: list[str] = []
    roles = (
        ("reward_model", "reward_dtype", "--reward-model"),
        ("eval_reward_model", "eval_reward_dtype", "--eval-reward-model"),
    )
    dtype = None
    for model, dtype_field, flag in roles:
        new, old = getattr(wanted, model), getattr(stored, model)
        new_dtype, old_dtype = getattr(wanted, dtype_field), getattr(stored, dtype_field)
        if (new, new_dtype) == (old, old_dtype):
            continue
        if new is None:
            return None  # rows cannot be un-scored: evaluate with the stored model instead
        options.append(f"{flag} {new}")
        dtype = new_dtype
    if not options:
        return None
    options.append(f"--reward-dtype {dtype}")
    prompt_set = session.get(PromptSet, evaluation.prompt_set_id)
    where = f" --prompt-set {prompt_set.name}" if prompt_set else ""
    return f"rlhf rescore --checkpoint {evaluation.checkpoint_id}{where} " + " ".join(options)


def check_scorers(
    session: Session, evaluation: Evaluation, prompts: Sequence[Prompt], wanted: Scorers
) -> None:
    """Refuse a (resumed) job whose stored rows were scored by other models or dtypes.

    Nothing is generated or scored then: the message names each difference and the
    `rlhf rescore` command that rescores the stored rows with the job's models.
    """
    counts = stored_scorers(session, evaluation, prompts)
    others = {s: n for s, n in counts.items() if s != wanted}
    if not others:
        return
    stored = max(others, key=others.__getitem__)
    diffs = [
        f"{field} {getattr(stored, field)!r} -> {getattr(wanted, field)!r}"
        for field in Scorers.__dataclass_fields__
        if getattr(stored, field) != getattr(wanted, field)
    ]
    command = _rescore_command(session, evaluation, wanted, stored)
    fix = (
        f"rescore them with `{command}` and evaluate again"
        if command
        else "evaluate with the stored models and dtype"
    )
    raise ScorersMismatchError(
        f"checkpoint {evaluation.checkpoint_id} has {sum(others.values())} responses scored by "
        f"other models than this job's ({'; '.join(diffs)}); nothing was generated or mixed: "
        f"{fix}"
    )


def pin_scorers(
    session: Session, evaluation: Evaluation, prompts: Sequence[Prompt], config: EvalConfig
) -> EvalConfig:
    """A resumed job goes on with what its stored rows were scored by where the config leaves
    the choice open: the auto-discovered evaluation RM (the newest registered one may have
    changed since) and an `auto` reward dtype. Explicit choices are kept (and checked later)."""
    counts = stored_scorers(session, evaluation, prompts)
    if len(counts) != 1:
        return config
    (stored,) = counts
    update: dict[str, Any] = {}
    if config.eval_reward_model is None and config.auto_eval_reward_model:
        # Also when the rows had none: one found now would score only the rest of them.
        update["eval_reward_model"] = stored.eval_reward_model
        update["auto_eval_reward_model"] = False
    if config.reward_dtype == "auto":
        dtype = stored.reward_dtype or stored.eval_reward_dtype
        if dtype:
            update["reward_dtype"] = dtype
    return config.model_copy(update=update) if update else config


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
    wanted_scorers = job_scorers(config, checkpoint.run)
    copied = 0
    for twin in twins:
        legacy = stored_config_scorers(twin)
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
            if row_scorers(row.scored_by, legacy) != wanted_scorers:
                continue  # scored by other models: copying would mix them into this job
            del wanted[row.prompt_id]
            copy = _copy(row, checkpoint.id)
            copy.scored_by = row.scored_by or legacy.as_dict()
            session.add(copy)
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
    scorers: Scorers | None = None,
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
            scored_by=scorers.as_dict() if scorers else None,
            reward_at_train_length=item.reward_at_train_length,
            eval_reward_at_train_length=item.eval_reward_at_train_length,
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
    session: Session, evaluation: Evaluation, prompt_ids: Sequence[int]
) -> tuple[list[ResponseRecord], str | None, Scorers | None]:
    """The rows to summarise, their one settings key and their one set of scorers; rows of mixed
    keys or scorers are refused (never averaged)."""
    checkpoint_id = evaluation.checkpoint_id
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
    legacy = stored_config_scorers(evaluation)
    scorers = sorted({row_scorers(g.scored_by, legacy) for g in rows}, key=repr)
    if len(scorers) > 1:
        raise ScorersMismatchError(
            f"checkpoint {checkpoint_id} has responses scored by {len(scorers)} different sets "
            f"of reward models ({'; '.join(repr(s.as_dict()) for s in scorers)}); they are not "
            "averaged together: `rlhf rescore` them with one"
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
            g.reward_at_train_length,
            g.eval_reward_at_train_length,
        )
        for g in rows
    ]
    return records, rows[0].settings_key if rows else None, scorers[0] if scorers else None


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
    records, key, scorers = _records(session, evaluation, [p.id for p in prompts])
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
    summary["scored_by"] = scorers.as_dict() if scorers else None
    # `reward` reads answers of up to max_new_tokens; PPO optimised (and the reward model saw in
    # training) far shorter ones: `reward_at_train_length` is the reward PPO optimised.
    summary["train_response_length"] = train_response_length(evaluation.checkpoint.run)
    summary["max_new_tokens"] = config.sampling.max_new_tokens
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


def train_response_length(run: TrainingRun) -> int | None:
    """The response length PPO optimised (`ppo.response_length`), None for other runs."""
    if run.algorithm != "ppo":
        return None
    value = ((run.config or {}).get("ppo") or {}).get("response_length")
    return int(value) if isinstance(value, int) and value > 0 else None
