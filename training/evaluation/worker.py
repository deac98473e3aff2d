"""The evaluation worker: claim a job, generate + score + KL batch by batch, then summarise.

Every batch is committed with its rewards, KL and diagnostics, so a killed worker loses at most
one batch; the next worker (or a restart) skips prompts that already have their row. The summary
and the checkpoint's "evaluated" status are written only after the last row exists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.orm import Session, sessionmaker

from judging.data.models import Checkpoint, Evaluation, Prompt
from judging.evaluation.config import EvalConfig
from judging.evaluation.queue import (
    claim_next,
    default_prompt_set,
    ensure_evaluations,
    heartbeat,
    mark_failed,
    release,
)
from judging.evaluation.results import (
    NewGeneration,
    check_scorers,
    copy_twin_base_rows,
    default_eval_reward_model,
    done_prompt_ids,
    finalize,
    generation_settings,
    job_prompts,
    job_scorers,
    pin_scorers,
    prompt_seed,
    store_generations,
    train_response_length,
)
from training.evaluation.models import JobModels, load_job_models
from training.generation.attention import resolve_dtype
from training.generation.base import SamplingParams, chat_prompt_ids, end_at_pad

log = logging.getLogger(__name__)
ModelLoader = Callable[[Checkpoint, EvalConfig], JobModels]
PHASES = ("generate", "score", "KL")


@dataclass(frozen=True)
class JobOutcome:
    evaluation_id: int
    checkpoint_id: int
    status: str
    error: str | None = None


def _params(config: EvalConfig) -> SamplingParams:
    s = config.sampling
    return SamplingParams(temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens)


def _run_batch(
    session: Session,
    evaluation: Evaluation,
    batch: Sequence[Prompt],
    models: JobModels,
    config: EvalConfig,
    progress: Progress | None,
    replicate: int = 0,
) -> None:
    texts = [p.text for p in batch]
    seeds = [prompt_seed(config, p, replicate) for p in batch]
    params = _params(config)
    pad = int(models.tokenizer.pad_token_id)
    results = models.generator.generate(texts, params, seeds)
    if pad != int(models.tokenizer.eos_token_id):
        results = [end_at_pad(r, pad, models.tokenizer) for r in results]
    _advance(progress, "generate", len(batch))
    prompt_ids = [chat_prompt_ids(models.tokenizer, t) for t in texts]
    responses = [r.token_ids for r in results]
    length = train_response_length(evaluation.checkpoint.run)
    none: list[float | None] = [None] * len(batch)
    rewards, rewards_short = (
        models.reward.score_at(prompt_ids, responses, length) if models.reward else (none, none)
    )
    eval_rewards, eval_short = (
        models.eval_reward.score_at(prompt_ids, responses, length)
        if models.eval_reward
        else (none, none)
    )
    _advance(progress, "score", len(batch))
    if models.kl is None:
        kls = [(0.0, 0.0)] * len(batch)
    else:
        reuse = models.generator.logprobs_exact and all(r.logprobs is not None for r in results)
        kls = models.kl.score(
            prompt_ids,
            responses,
            temperature=params.temperature,
            sampled=[r.logprobs or [] for r in results] if reuse else None,
        )
    _advance(progress, "KL", len(batch))
    items = [
        NewGeneration(
            p.id,
            seed,
            r.text,
            len(r.token_ids),
            # A response ended by a sampled pad id stopped (it was not cut by the limit); the
            # flag tells `rlhf rescore` not to append the EOS it never had.
            "stop" if r.finish_reason == "pad" else r.finish_reason,
            reward,
            k1,
            k3,
            extra={"ended_on_pad": True} if r.finish_reason == "pad" else {},
            eval_reward=e,
            replicate=replicate,
            reward_at_train_length=short,
            eval_reward_at_train_length=e_short,
        )
        for p, seed, r, reward, e, (k1, k3), short, e_short in zip(
            batch,
            seeds,
            results,
            rewards,
            eval_rewards,
            kls,
            rewards_short,
            eval_short,
            strict=True,
        )
    ]
    store_generations(
        session,
        checkpoint_id=evaluation.checkpoint_id,
        items=items,
        backend=models.generator.backend,
        model_ref=models.model_ref.label,
        sampling_params=generation_settings(config),
        config=config,
        scorers=job_scorers(config, evaluation.checkpoint.run),
    )


def _advance(progress: Progress | None, phase: str, n: int) -> None:
    if progress is not None:
        task = next(t.id for t in progress.tasks if t.description == phase)
        progress.advance(task, n)


def run_job(
    session: Session,
    evaluation: Evaluation,
    config: EvalConfig,
    load_models: ModelLoader = load_job_models,
    progress: Progress | None = None,
) -> dict[str, object]:
    """Fill the missing rows of one claimed job, committing per batch, then write the summary.

    Every row's scores are pinned to what produced them (`Generation.scored_by`): a resume goes
    on with the stored rows' evaluation RM and dtype where the config leaves them open, and is
    refused (nothing generated, nothing mixed) where it asks for others.
    """
    run = evaluation.checkpoint.run
    prompts = job_prompts(session, evaluation.prompt_set_id, config.limit)
    # Before the stored config is overwritten: rows from before `scored_by` are read through it.
    config = pin_scorers(session, evaluation, prompts, config)
    if config.eval_reward_model is None and config.auto_eval_reward_model:
        found = default_eval_reward_model(session, run)
        if found:
            config = config.model_copy(update={"eval_reward_model": found})
    config = config.model_copy(
        update={
            "generation_dtype": resolve_dtype(config.generation_dtype, config.device),
            "reward_dtype": resolve_dtype(config.reward_dtype, config.device),
        }
    )
    scorers = job_scorers(config, run)
    check_scorers(session, evaluation, prompts, scorers)
    config = config.model_copy(update={"reward_model": scorers.reward_model})
    evaluation.config = config.model_dump(mode="json")
    # Replicate 0 first: the summary needs it; extra replicates are base samples for studies.
    # Within one, similar prompt lengths share a batch: less left padding in generation.
    todo: list[tuple[int, list[Prompt]]] = []
    for replicate in range(evaluation.replicates):
        copy_twin_base_rows(session, evaluation, prompts, config, replicate)
        done = done_prompt_ids(session, evaluation.checkpoint_id, prompts, config, replicate)
        missing = sorted((p for p in prompts if p.id not in done), key=lambda p: len(p.text))
        todo.append((replicate, missing))
    if progress is not None:
        total = len(prompts) * evaluation.replicates
        left = sum(len(missing) for _, missing in todo)
        for phase in PHASES:
            progress.add_task(phase, total=total, completed=total - left)
    # End the transaction that stored the config before the long work: on SQLite an open write
    # transaction locks out every other writer (the trainer registering checkpoints) for minutes.
    session.commit()
    if any(missing for _, missing in todo):
        models = load_models(evaluation.checkpoint, config)
        try:
            for replicate, missing in todo:
                for start in range(0, len(missing), config.batch_size):
                    batch = missing[start : start + config.batch_size]
                    _run_batch(session, evaluation, batch, models, config, progress, replicate)
                    heartbeat(session, evaluation)
                    session.commit()
        finally:
            models.close()
    summary = finalize(session, evaluation, prompts, config)
    session.commit()
    return summary


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    )


def process_one(
    factory: sessionmaker[Session],
    *,
    config: EvalConfig,
    worker: str,
    prompt_set_id: int,
    checkpoint_id: int | None = None,
    load_models: ModelLoader = load_job_models,
    show_progress: bool = False,
) -> JobOutcome | None:
    """Claim and run one job; a failure is recorded on the job and its checkpoint, not raised."""
    with factory() as session:
        evaluation = claim_next(
            session,
            worker=worker,
            prompt_set_id=prompt_set_id,
            stale_after_s=config.stale_after_s,
            checkpoint_id=checkpoint_id,
        )
        if evaluation is None:
            return None
        ids = (evaluation.id, evaluation.checkpoint_id)
        try:
            if show_progress:
                with _progress() as progress:
                    run_job(session, evaluation, config, load_models, progress)
            else:
                run_job(session, evaluation, config, load_models)
        except KeyboardInterrupt:  # stopped, not failed: the job goes back to the queue now
            session.rollback()
            release(session, ids[0], worker=worker)
            session.commit()
            raise
        except Exception as exc:  # any failure of the job is stored; the worker goes on
            log.exception("evaluation %s failed", ids[0])
            session.rollback()
            failed = session.get(Evaluation, ids[0], populate_existing=True)
            assert failed is not None
            lines = str(exc).strip().splitlines()
            message = f"{type(exc).__name__}: {lines[0] if lines else ''}"
            mark_failed(session, failed, message)
            session.commit()
            return JobOutcome(*ids, "failed", message)
        return JobOutcome(*ids, "done")


def enqueue(
    factory: sessionmaker[Session],
    *,
    prompt_set_name: str | None,
    checkpoint_ids: list[int] | None = None,
) -> int:
    """Create the missing jobs; returns the prompt set's id."""
    with factory() as session:
        prompt_set = default_prompt_set(session, prompt_set_name)
        ensure_evaluations(session, prompt_set_id=prompt_set.id, checkpoint_ids=checkpoint_ids)
        session.commit()
        return prompt_set.id


def watch(
    factory: sessionmaker[Session],
    *,
    config: EvalConfig,
    worker: str,
    prompt_set_name: str | None,
    poll_s: float = 10.0,
    max_jobs: int | None = None,
    once: bool = False,
    load_models: ModelLoader = load_job_models,
    on_outcome: Callable[[JobOutcome], None] | None = None,
    show_progress: bool = False,
) -> list[JobOutcome]:
    """Evaluate new checkpoints as they are registered; `once` stops when the queue is empty."""
    outcomes: list[JobOutcome] = []
    while max_jobs is None or len(outcomes) < max_jobs:
        prompt_set_id = enqueue(factory, prompt_set_name=prompt_set_name)
        outcome = process_one(
            factory,
            config=config,
            worker=worker,
            prompt_set_id=prompt_set_id,
            load_models=load_models,
            show_progress=show_progress,
        )
        if outcome is not None:
            outcomes.append(outcome)
            if on_outcome:
                on_outcome(outcome)
            continue
        if once:
            break
        time.sleep(poll_s)
    return outcomes
