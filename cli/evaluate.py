"""`rlhf evaluate`: generate, score and diagnose checkpoints on a held-out prompt set."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli.common import console, settings
from judging.errors import ConfigError, ConflictError
from judging.stopping import stop_on_signals

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session, sessionmaker

    from judging.evaluation.config import EvalConfig
    from training.evaluation.worker import JobOutcome


def evaluate(
    checkpoint: int | None = typer.Option(
        None, "--checkpoint", help="Evaluate this checkpoint id only."
    ),
    watch: bool = typer.Option(False, "--watch", help="Keep polling for new checkpoints."),
    prompt_set: str | None = typer.Option(
        None, "--prompt-set", help="Prompt set name (default: first held-out set)."
    ),
    config_path: Path | None = typer.Option(
        None, "--config", help="Eval YAML (default training/configs/eval_cpu.yaml)."
    ),
    backend: str | None = typer.Option(
        None, help="Override the config: transformers, vllm or vllm-server."
    ),
    limit: int | None = typer.Option(None, help="Only the first N prompts of the set."),
    poll: float = typer.Option(10.0, help="Seconds between polls with --watch."),
    replicates: int | None = typer.Option(
        None,
        "--replicates",
        min=1,
        help="With --checkpoint: responses per prompt (a base needs one per judged checkpoint).",
    ),
    eval_reward_model: Path | None = typer.Option(
        None,
        "--eval-reward-model",
        help="Override the config: a reward-model folder PPO did not optimise, scored beside "
        "the run's own.",
    ),
) -> None:
    """Evaluate checkpoints that have no finished evaluation (base checkpoints first)."""
    from judging.data.db import check_connection, make_engine, make_session_factory
    from judging.evaluation.config import load_eval_config
    from judging.evaluation.queue import local_worker_name
    from training.evaluation.worker import watch as watch_loop

    # `kill` (SIGTERM, what the demo sends its background worker) stops like Ctrl-C: the job in
    # hand goes back to the queue at once (`judging.stopping`).
    stop_on_signals()
    engine = make_engine(settings().resolved_database_url)
    check_connection(engine)
    factory = make_session_factory(engine)
    try:
        judge = str(eval_reward_model) if eval_reward_model else None
        config = load_eval_config(
            config_path, backend=backend, limit=limit, eval_reward_model=judge
        )
    except ConfigError as exc:
        if checkpoint is not None:  # the job asked for fails with the config's one-line error
            _fail(factory, checkpoint, prompt_set, str(exc))
        engine.dispose()
        raise
    set_name = prompt_set or config.prompt_set

    def report(outcome: JobOutcome) -> None:
        detail = f": {outcome.error}" if outcome.error else ""
        console.print(f"checkpoint {outcome.checkpoint_id}: evaluation {outcome.status}{detail}")

    try:
        if checkpoint is not None:
            _one(factory, checkpoint, set_name, config, report, replicates)
            return
        if replicates is not None:
            raise ConflictError("--replicates needs --checkpoint (the base to sample again)")
        outcomes = watch_loop(
            factory,
            config=config,
            worker=local_worker_name(),
            prompt_set_name=set_name,
            poll_s=poll,
            once=not watch,
            on_outcome=report,
            show_progress=True,
        )
        if not outcomes:
            console.print("nothing to evaluate")
    finally:
        engine.dispose()


def _fail(
    factory: sessionmaker[Session], checkpoint_id: int, set_name: str | None, message: str
) -> None:
    """Mark one checkpoint's job failed before anything ran (nothing generated or aggregated)."""
    from judging.evaluation.queue import default_prompt_set, mark_failed, requeue

    with factory() as session:
        prompt_set_id = default_prompt_set(session, set_name).id
        evaluation = requeue(session, checkpoint_id=checkpoint_id, prompt_set_id=prompt_set_id)
        if evaluation.status != "done":
            mark_failed(session, evaluation, f"ConfigError: {message}")
        session.commit()


def _one(
    factory: sessionmaker[Session],
    checkpoint_id: int,
    set_name: str | None,
    config: EvalConfig,
    report: Callable[[JobOutcome], None],
    replicates: int | None = None,
) -> None:
    """Evaluate one checkpoint now (re-queueing it if it failed before, or wants more samples)."""
    from judging.evaluation.queue import default_prompt_set, local_worker_name, requeue
    from training.evaluation.worker import process_one

    with factory() as session:
        prompt_set_id = default_prompt_set(session, set_name).id
        evaluation = requeue(
            session,
            checkpoint_id=checkpoint_id,
            prompt_set_id=prompt_set_id,
            replicates=replicates,
        )
        status = evaluation.status
        session.commit()
    if status == "done":
        console.print(f"checkpoint {checkpoint_id} is already evaluated on this prompt set")
        return
    outcome = process_one(
        factory,
        config=config,
        worker=local_worker_name(),
        prompt_set_id=prompt_set_id,
        checkpoint_id=checkpoint_id,
        show_progress=True,
    )
    if outcome is None:
        raise ConflictError(f"checkpoint {checkpoint_id} is being evaluated by another worker")
    report(outcome)
    if outcome.status == "failed":
        raise typer.Exit(1)


def rescore(
    eval_reward_model: Path | None = typer.Option(
        None,
        "--eval-reward-model",
        help="A reward-model folder, or a shipped adapter (merged into the data dir once), to "
        "score with as the evaluation RM.",
    ),
    reward_model: Path | None = typer.Option(
        None,
        "--reward-model",
        help="Rescore the training reward (the one PPO optimised) with this folder instead.",
    ),
    reward_dtype: str = typer.Option(
        "auto", "--reward-dtype", help="auto, float32 or bfloat16 (auto: as `rlhf evaluate`)."
    ),
    prompt_set: str | None = typer.Option(
        None, "--prompt-set", help="Prompt set name (default: first held-out set)."
    ),
    checkpoint: list[int] | None = typer.Option(
        None,
        "--checkpoint",
        help="Only these checkpoint ids (repeatable); their unfinished jobs are rescored too, "
        "so a resume refused for other reward models can go on.",
    ),
    base_model: str = typer.Option(
        "var/models/SmolLM2-135M-Instruct", help="Base of a shipped adapter."
    ),
    batch_size: int = typer.Option(16, min=1, help="Reward-model batch."),
) -> None:
    """Score evaluations' stored responses with other reward models (an evaluation RM PPO never
    optimised, or another training RM or dtype) without generating them again; every row records
    what scored it, the run is resumable, and finished summaries are refreshed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    from judging.data.db import check_connection, make_engine, make_session_factory
    from judging.evaluation.queue import default_prompt_set
    from training.evaluation.rescore import done_evaluations, rescore_evaluation
    from training.evaluation.scoring import PromptCache, RewardScorer
    from training.generation.attention import resolve_dtype
    from training.shipped_rm import materialise

    if reward_dtype not in ("auto", "float32", "bfloat16"):
        raise ConfigError(f"--reward-dtype must be auto, float32 or bfloat16, not {reward_dtype!r}")
    roles = [(r, p) for r, p in (("reward", reward_model), ("eval_reward", eval_reward_model)) if p]
    if not roles:
        raise ConfigError("give --eval-reward-model and/or --reward-model")
    stop_on_signals()
    import torch

    dtype = torch.bfloat16 if resolve_dtype(reward_dtype, "cpu") == "bfloat16" else torch.float32
    scorers = []
    for role, given in roles:
        path = given
        if (path / "adapter_config.json").is_file():
            path = materialise(
                path, base_model, settings().data_dir / "reward_models" / (path.name + "-merged")
            )
        if not (path / "config.json").is_file():
            raise ConfigError(f"{given} is neither a reward-model folder nor an adapter")
        # Every checkpoint of a set was judged on the same prompts: their prefixes run once.
        scorer = RewardScorer(
            str(path), batch_size=batch_size, dtype=dtype, prompt_cache=PromptCache()
        )
        scorers.append((role, scorer))
    engine = make_engine(settings().resolved_database_url)
    check_connection(engine)
    try:
        with make_session_factory(engine)() as session:
            set_id = default_prompt_set(session, prompt_set).id
            jobs = done_evaluations(session, set_id, checkpoint, unfinished=bool(checkpoint))
            with Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()
            ) as bar:
                for evaluation in jobs:
                    for role, scorer in scorers:
                        task = bar.add_task(
                            f"checkpoint {evaluation.checkpoint_id} ({role})", total=None
                        )

                        def advance(k: int, task: TaskID = task) -> None:
                            bar.advance(task, k)

                        n = rescore_evaluation(
                            session,
                            evaluation,
                            scorer,
                            role=role,
                            batch_size=batch_size,
                            on_batch=advance,
                        )
                        bar.update(task, total=n, completed=n)
        names = ", ".join(f"{role} {scorer.path} ({scorer.dtype_name})" for role, scorer in scorers)
        console.print(f"{len(jobs)} evaluations scored by {names}")
    finally:
        engine.dispose()
