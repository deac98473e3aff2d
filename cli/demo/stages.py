"""The demo's stages, in the order `STAGES` lists them.

shipped best-of-n ladder (imported, judged by simulated raters, recommended: a whole Gao curve
on the dashboard within minutes, nothing trained) -> shipped reward model -> PPO sweep (two KL
coefficients, a checkpoint every few steps, each registered when saved) -> every checkpoint
evaluated on the held-out prompts -> a study judged by simulated raters through the HTTP API ->
the recommendation -> an empty study for real people.

Each stage is one function of the context that returns its `Stage`s (the PPO sweep one per run):
`done()` asks the database or the files what is already done, `run(report)` does only the rest,
and `skip()` says why a stage cannot run here (the ladder's without its shipped files).
The heavy work (training, evaluation) runs in `rlhf` child processes whose own writes are atomic,
so Ctrl-C at any point leaves nothing half-written and the next run resumes. A new stage is one
function here and one entry in `STAGES`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cli.common import db_session
from cli.demo import processes, queries
from cli.demo.context import (
    LADDER_STUDY,
    PEOPLE_STUDY,
    SIM_STUDY,
    DemoContext,
    Report,
    run_name,
)
from cli.demo.invites import write_private
from cli.demo.runner import Stage, run_stages
from cli.demo.status import echo_changes, get_result, set_result
from cli.demo.studies import (
    LADDER_BASE_REUSE,
    base_replicates_wanted,
    create_demo_study,
    demo_checkpoint_ids,
    ladder_raters,
    reference_base,
    shortlist,
    sim_base_reuse,
)
from cli.ladder import import_ladder_file
from cli.simulate import gold_scored_study
from judging.analysis.recommendation import refresh_recommendation
from judging.evaluation.queue import requeue
from judging.gold import RaterSpec
from judging.pipeline_status import PipelineStatus
from judging.settings import PROJECT_ROOT
from judging.studies.raters import invite_url
from judging.studies.simulated import SIM_PREFIX, run_raters
from training.shipped_rm import materialise


def ladder(ctx: DemoContext) -> list[Stage]:
    """The shipped best-of-n ladder (docs/ladder.md) as checkpoints, a study of its rungs judged
    by simulated raters, and its recommendation; skipped while the ladder files are absent."""
    runs = ((ctx.ladder_file, ctx.ladder_run), (ctx.ladder_ref_file, ctx.ladder_ref_run))

    def absent() -> str | None:
        missing = ctx.ladder_files_missing()
        if not missing or imported():
            return None
        names = ", ".join(_shown(path) for path in missing)
        return f"no shipped best-of-n ladder ({names} absent; `rlhf ladder build` makes them)"

    def imported() -> bool:
        # One transaction per import: a run that exists holds all its rungs.
        return all(queries.training_run(name) is not None for _, name in runs)

    def run_import(report: Report) -> None:
        for path, name in runs:
            if queries.training_run(name) is None:
                report(f"importing {_shown(path)} as run {name}")
                import_ladder_file(path, name, ctx.prompt_set, base_model=ctx.base_model)

    def judge(report: Report) -> None:
        # The rungs BoN(n), n >= 1, against the reference ladder's base: its sample per prompt
        # was drawn on another seed, independent of every sample the rungs chose from.
        rungs = queries.checkpoint_ids([ctx.ladder_run], trained_only=True)
        reference = queries.checkpoint_ids([ctx.ladder_ref_run])[0]
        raters = _sim_names("ladder", ladder_raters(ctx))
        study_id, tokens = create_demo_study(
            ctx, LADDER_STUDY, raters, rungs, LADDER_BASE_REUSE, reference=reference
        )
        _judge_by_simulated_raters(ctx, study_id, tokens, report)

    return [
        Stage("ladder", "Best-of-n ladder", imported, run_import, absent),
        Stage("ladder_study", "Ladder: simulated raters", _judged(LADDER_STUDY), judge, absent),
        _recommendation(
            ctx, "ladder_recommendation", "Ladder recommendation", LADDER_STUDY, absent
        ),
    ]


def _shown(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def reward_model(ctx: DemoContext) -> list[Stage]:
    """The shipped reward-model adapters merged into the base: the proxy (the ladder's when it
    is shipped) and the evaluation RM."""
    wanted = [(ctx.proxy_adapter, ctx.rm_folder), (ctx.shipped_eval_rm, ctx.eval_rm_folder)]

    def done() -> bool:
        judge = ctx.eval_rm_folder
        return (ctx.rm_folder / "config.json").is_file() and (
            judge is None or (judge / "config.json").is_file()
        )

    def run(report: Report) -> None:
        for adapter, folder in wanted:
            if folder is not None and not (folder / "config.json").is_file():
                report(f"merging the shipped adapter {adapter.name} into the base")
                materialise(adapter, ctx.base_model, folder)

    return [Stage("reward_model", "Reward model", done, run)]


def ppo_sweep(ctx: DemoContext) -> list[Stage]:
    """One PPO run per config, resumed where it stopped."""
    return [_ppo_run(ctx, config) for config in ctx.configs]


def _ppo_run(ctx: DemoContext, config: str) -> Stage:
    name = run_name(config)

    def done() -> bool:
        run = queries.training_run(name)
        if run is None:
            return False
        return bool(
            run.status == "finished" or (run.status == "stopped" and run.error != "interrupted")
        )

    def run(report: Report) -> None:
        started = queries.training_run(name)
        resume = started is not None
        report(
            f"{name}: {'resuming' if resume else 'starting'} (checkpoints appear on the dashboard)"
        )
        # A resumed run keeps the proxy it started with, even if another one was shipped since.
        proxy = started.reward_model if started is not None else None
        sets = [f"model.reward_model={proxy or ctx.rm_folder}", *ctx.train_overrides]
        args = ["train", "ppo", "--config", config, *[a for s in sets for a in ("--set", s)]]
        with _evaluating_alongside(ctx, report):
            processes.rlhf(ctx, *args, *(["--resume"] if resume else []))

    return Stage(f"ppo:{name}", f"PPO {name}", done, run)


@contextmanager
def _evaluating_alongside(ctx: DemoContext, report: Report) -> Iterator[None]:
    """`rlhf evaluate --watch` in the background while the body runs, stopped after it
    (an interrupted job goes back to the queue with its committed rows; the evaluate stage
    finishes it)."""
    if not ctx.evaluate_while_training:
        yield
        return
    log = ctx.data_dir / "logs" / "evaluate-watch.log"
    with processes.in_background(ctx, [*ctx.eval_args(), "--watch", "--poll", "10"], log):
        report(f"evaluating checkpoints as they are registered (log {log})")
        yield


def evaluation(ctx: DemoContext) -> list[Stage]:
    """Every demo checkpoint evaluated on the held-out prompts, and the base samples blind
    judging pairs with them."""

    def missing() -> int:
        return queries.evaluations_missing(demo_checkpoint_ids(ctx), ctx.prompt_set)

    def done() -> bool:
        return missing() == 0 and not _base_replicates_missing(ctx)

    def run(report: Report) -> None:
        report(f"{missing()} checkpoints to evaluate on {ctx.prompt_set}")
        _queue_base_replicates(ctx)
        processes.parallel_rlhf(ctx, ctx.eval_args(), ctx.eval_workers or os.cpu_count() or 1)
        if _base_replicates_missing(ctx):
            wanted = base_replicates_wanted(ctx)
            report(f"base samples for blind judging: {wanted} per prompt")
            base = ["--checkpoint", str(reference_base(ctx)), "--replicates", str(wanted)]
            processes.rlhf(ctx, *ctx.eval_args(), *base)

    return [Stage("evaluate", "Evaluation", done, run)]


def _queue_base_replicates(ctx: DemoContext) -> None:
    """Ask for the base samples of blind judging as one more job: the evaluate stage's workers
    take it beside the checkpoints (not during training: it is one long job, and the background
    worker would make it before any checkpoint, the base being first in the queue)."""
    ids = demo_checkpoint_ids(ctx)
    if not ids:
        return
    with db_session() as session:
        prompt_set_id = queries.prompt_set_id(session, ctx.prompt_set)
        if prompt_set_id is not None:
            requeue(
                session,
                checkpoint_id=ids[0],
                prompt_set_id=prompt_set_id,
                replicates=base_replicates_wanted(ctx),
            )
            session.commit()


def _base_replicates_missing(ctx: DemoContext) -> bool:
    found = queries.evaluation(reference_base(ctx), ctx.prompt_set)
    return found is None or found.status != "done" or found.replicates < base_replicates_wanted(ctx)


def simulated_study(ctx: DemoContext) -> list[Stage]:
    """A study of the trained checkpoints judged by simulated raters through the HTTP API."""

    def run(report: Report) -> None:
        trained = demo_checkpoint_ids(ctx, trained_only=True)
        raters = _sim_names("demo", ctx.sim_raters)
        study_id, tokens = create_demo_study(ctx, SIM_STUDY, raters, trained, sim_base_reuse(ctx))
        _judge_by_simulated_raters(ctx, study_id, tokens, report)

    return [Stage("simulated_study", "Simulated raters", _judged(SIM_STUDY), run)]


def _sim_names(group: str, count: int) -> list[str]:
    return [f"{SIM_PREFIX}{group}-{i:02d}" for i in range(1, count + 1)]


def _judged(study_name: str) -> Callable[[], bool]:
    """A study stage's `done`: the study exists and every assignment of it is judged."""

    def done() -> bool:
        study = queries.study_by_name(study_name)
        return study is not None and queries.assignments_pending(study.id) == 0

    return done


def _judge_by_simulated_raters(
    ctx: DemoContext, study_id: int, tokens: dict[str, str], report: Report
) -> None:
    """Store the study's gold scores (its gold curve), then the simulated raters judge every
    item of their queues through the running app's HTTP API."""
    report(f"study {study_id}: scoring its responses with the gold preference")
    score = gold_scored_study(study_id)
    todo = queries.assignments_pending(study_id)
    counter = {"n": 0}

    def tick(_name: str, _n: int) -> None:
        counter["n"] += 1
        if counter["n"] % 25 == 0 or counter["n"] == todo:
            report(f"study {study_id}: {counter['n']}/{todo} simulated verdicts via {ctx.base_url}")

    spec = RaterSpec(temperature=ctx.rater_temperature, position_bias=ctx.rater_position_bias)
    run_raters(ctx.base_url, tokens, score, spec, seed=0, on_verdict=tick)


def recommendation(ctx: DemoContext) -> list[Stage]:
    """The product's recommendation for the simulated study, stored with its history and kept
    in the status file's results."""
    return [_recommendation(ctx, "recommendation", "Recommendation", SIM_STUDY)]


def _recommendation(
    ctx: DemoContext,
    key: str,
    title: str,
    study_name: str,
    skip: Callable[[], str | None] | None = None,
) -> Stage:
    """A stage that stores the study's recommendation; `key` names both the stage and its entry
    in the status file's results."""

    def done() -> bool:
        return get_result(ctx.data_dir, key) is not None

    def run(report: Report) -> None:
        study = queries.study_by_name(study_name)
        assert study is not None
        result = _recommend(int(study.id))
        set_result(ctx.data_dir, key, result)
        report(str(result))

    return Stage(key, title, done, run, skip or (lambda: None))


def _recommend(study_id: int) -> dict[str, Any]:
    with db_session() as session:
        refreshed = refresh_recommendation(session, study_id)
        stored = refreshed.stored
        if stored is None:
            reasons = refreshed.explanation
            return {"study_id": study_id, "checkpoint_id": None, "explanation": list(reasons)}
        return {
            "study_id": study_id,
            "checkpoint_id": stored.checkpoint_id,
            "recommendation_id": stored.id,
        }


def people_study(ctx: DemoContext) -> list[Stage]:
    """An empty study of the shortlist for real people; their invite links in a private file."""

    def done() -> bool:
        return queries.study_by_name(PEOPLE_STUDY) is not None

    def run(report: Report) -> None:
        checkpoints = shortlist(ctx)
        study_id, tokens = create_demo_study(ctx, PEOPLE_STUDY, list(ctx.people), checkpoints)
        links = {name: invite_url(ctx.base_url, token) for name, token in tokens.items()}
        invites = ctx.data_dir / "demo" / "invites.txt"
        write_private(invites, "".join(f"{n}\t{u}\n" for n, u in links.items()))
        set_result(ctx.data_dir, "people_study_id", study_id)
        for name, url in links.items():
            ctx.echo(f"invite for {name}: {url}")
        report(
            f"study {study_id} for real people on checkpoints {checkpoints}; "
            f"invite links in {invites}"
        )

    return [Stage("people_study", "Study for people", done, run)]


STAGES: tuple[Callable[[DemoContext], list[Stage]], ...] = (
    ladder,
    reward_model,
    ppo_sweep,
    evaluation,
    simulated_study,
    recommendation,
    people_study,
)
"""The pipeline, in order. A stage's names are its keys in the status file, so renaming one
makes a rerun do it again."""


def build_stages(ctx: DemoContext) -> list[Stage]:
    return [stage for make in STAGES for stage in make(ctx)]


def run_demo(ctx: DemoContext) -> PipelineStatus:
    return run_stages(build_stages(ctx), ctx.data_dir, on_change=echo_changes(ctx.echo))
