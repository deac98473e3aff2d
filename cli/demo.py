"""`rlhf demo run|up|status`: the product's main job end to end, resumable stage by stage.

shipped reward model -> PPO sweep (two KL coefficients, a checkpoint every few steps, each
registered when saved) -> every checkpoint evaluated on the held-out prompts -> a study judged by
simulated raters through the HTTP API -> the recommendation -> an empty study for real people.

Every stage asks the database or the files what is already done and does only the rest; the
heavy work (training, evaluation) runs in child processes of the `rlhf` command, whose own writes
are atomic, so Ctrl-C at any point leaves nothing half-written and the next run resumes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from cli.common import console, db_session, settings
from judging import assets
from judging.pipeline_status import PipelineStatus, Stage, read_status, run_stages
from judging.settings import PROJECT_ROOT
from judging.stopping import stop_on_signals

app = typer.Typer(help="The demo: train, evaluate, judge and recommend.", no_args_is_help=True)

DEMO_CONFIGS = ("training/configs/demo_ppo_kl001.yaml", "training/configs/demo_ppo_kl01.yaml")
SHIPPED_RM = assets.shipped_data_dir() / "reward_models" / "rm-onpolicy"
SHIPPED_EVAL_RM = assets.shipped_data_dir() / "reward_models" / "rm-onpolicy-eval"
"""Trained on other prompts' pairs than the proxy; PPO never optimises it (`eval_reward`)."""
SIM_STUDY = "demo-simulated"
PEOPLE_STUDY = "demo-people"
Report = Callable[[str], None]


@dataclass
class DemoContext:
    data_dir: Path
    base_url: str
    configs: tuple[str, ...] = DEMO_CONFIGS
    eval_config: str = "training/configs/eval_demo.yaml"
    prompt_set: str = "heldout-200"
    shipped_rm: Path = SHIPPED_RM
    reward_model: Path | None = None
    """A ready reward-model folder (skips materialising the shipped one; tests use it)."""
    shipped_eval_rm: Path = SHIPPED_EVAL_RM
    eval_reward_model: Path | None = None
    """A ready evaluation reward-model folder (tests); default: the shipped one, merged."""
    base_model: str = "var/models/SmolLM2-135M-Instruct"
    train_overrides: list[str] = field(default_factory=list)
    """Extra `--set key=value` for every PPO run (tests shrink the models and steps)."""
    eval_limit: int | None = None
    sim_raters: int = 12
    """Simulated raters cost nothing, and with more of them comparisons can share base
    responses (`sim_base_reuse`): fewer base samples to generate for blind judging."""
    people: tuple[str, ...] = ("demo-rater-1", "demo-rater-2", "demo-rater-3")
    rater_temperature: float = 0.08
    rater_position_bias: float = 0.2
    echo: Callable[[str], None] = console.print
    evaluate_while_training: bool = True
    """A worker evaluates each checkpoint as PPO registers it, on the other core: training and
    evaluation overlap instead of running one after the other, and the dashboard fills sooner."""
    eval_workers: int = 0
    """Evaluation workers once training is done (0: one per CPU core, each on one thread)."""

    @property
    def rm_folder(self) -> Path:
        return self.reward_model or self.data_dir / "reward_models" / "rm-onpolicy-merged"

    @property
    def eval_rm_folder(self) -> Path | None:
        """None when no evaluation RM is shipped: the evaluation then scores with the proxy."""
        if self.eval_reward_model is not None:
            return self.eval_reward_model
        if not (self.shipped_eval_rm / "adapter_config.json").is_file():
            return None
        return self.data_dir / "reward_models" / f"{self.shipped_eval_rm.name}-merged"


def _env(ctx: DemoContext) -> dict[str, str]:
    return {**os.environ, "RLHF_DATA_DIR": str(ctx.data_dir), "OMP_NUM_THREADS": "1"}


STOPPED_BY_SIGNAL = {130, 143, -signal.SIGINT, -signal.SIGTERM}
"""Exit codes of a child stopped by Ctrl-C or SIGTERM: click's 130, the shell's 128 + SIGTERM,
or the signal itself (Popen's negative return code)."""


def run_children(
    commands: list[list[str]], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> None:
    """Run the commands at once, to their end; raise CalledProcessError if any fails.

    Interrupted (Ctrl-C, or SIGTERM turned into KeyboardInterrupt), each child still running is
    asked to stop with SIGTERM and given time to do so (`_interrupt`): `subprocess.run` would
    SIGKILL it 0.25 s later, and a killed evaluation worker leaves its job `running` (nobody takes
    it for `stale_after_s`), a killed trainer its checkpoint half saved.
    """
    children = [subprocess.Popen(command, cwd=cwd, env=env) for command in commands]
    try:
        codes = [child.wait() for child in children]
    finally:
        for child in children:
            _interrupt(child)
    if any(code in STOPPED_BY_SIGNAL for code in codes):
        # The child was stopped (the terminal's Ctrl-C reaches the whole process group): the
        # stage is interrupted, not failed, whether or not this process saw the signal too.
        raise KeyboardInterrupt
    failed = [(code, command) for code, command in zip(codes, commands, strict=True) if code]
    if failed:
        raise subprocess.CalledProcessError(*failed[0])


def run_child(
    command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> None:
    run_children([command], cwd=cwd, env=env)


def _rlhf(ctx: DemoContext, *args: str) -> None:
    """`rlhf ARGS` in a child process (same settings); Ctrl-C reaches it too."""
    run_child([sys.executable, "-m", "cli.main", *args], cwd=PROJECT_ROOT, env=_env(ctx))


def _parallel_rlhf(ctx: DemoContext, args: list[str], copies: int) -> None:
    """`copies` children of `rlhf ARGS` at once (evaluation workers share the queue: each claims
    its own jobs); fails like `_rlhf` if any child fails."""
    command = [sys.executable, "-m", "cli.main", *args]
    run_children([command] * max(1, copies), cwd=PROJECT_ROOT, env=_env(ctx))


def _eval_args(ctx: DemoContext) -> list[str]:
    args = ["evaluate", "--config", ctx.eval_config, "--prompt-set", ctx.prompt_set]
    if ctx.eval_rm_folder is not None:
        args += ["--eval-reward-model", str(ctx.eval_rm_folder)]
    return args + (["--limit", str(ctx.eval_limit)] if ctx.eval_limit else [])


@contextmanager
def _evaluating_alongside(ctx: DemoContext, report: Report) -> Iterator[None]:
    """`rlhf evaluate --watch` in the background while the body runs, stopped after it
    (an interrupted job goes back to the queue with its committed rows; the evaluate stage
    finishes it)."""
    if not ctx.evaluate_while_training:
        yield
        return
    log = ctx.data_dir / "logs" / "evaluate-watch.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "cli.main", *_eval_args(ctx), "--watch", "--poll", "10"]
    with log.open("a") as out:
        child = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=_env(ctx), stdout=out, stderr=subprocess.STDOUT
        )
    report(f"evaluating checkpoints as they are registered (log {log})")
    try:
        yield
    finally:
        _interrupt(child)


def _interrupt(child: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)  # both `rlhf evaluate` and `rlhf train` stop cleanly on it
    try:
        child.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


# --- stage 1: the reward model ------------------------------------------------------------------


def _rm_done(ctx: DemoContext) -> bool:
    judge = ctx.eval_rm_folder
    return (ctx.rm_folder / "config.json").is_file() and (
        judge is None or (judge / "config.json").is_file()
    )


def _rm_run(ctx: DemoContext, report: Report) -> None:
    from training.shipped_rm import materialise

    wanted = [(ctx.shipped_rm, ctx.rm_folder), (ctx.shipped_eval_rm, ctx.eval_rm_folder)]
    for adapter, folder in wanted:
        if folder is not None and not (folder / "config.json").is_file():
            report(f"merging the shipped adapter {adapter.name} into the base")
            materialise(adapter, ctx.base_model, folder)


# --- stage 2: the PPO sweep ---------------------------------------------------------------------


def _run_name(config: str) -> str:
    from training.config import load_config

    return load_config(Path(config), []).run.name


def _run_row(name: str) -> Any:
    from judging.data.registry import get_run_by_name

    with db_session() as session:
        run = get_run_by_name(session, name)
        if run is None:
            return None
        session.expunge(run)
        return run


def _ppo_done(config: str) -> bool:
    run = _run_row(_run_name(config))
    if run is None:
        return False
    return bool(
        run.status == "finished" or (run.status == "stopped" and run.error != "interrupted")
    )


def _ppo_run(ctx: DemoContext, config: str, report: Report) -> None:
    name = _run_name(config)
    resume = _run_row(name) is not None
    report(f"{name}: {'resuming' if resume else 'starting'} (checkpoints appear on the dashboard)")
    sets = [f"model.reward_model={ctx.rm_folder}", *ctx.train_overrides]
    args = ["train", "ppo", "--config", config, *[a for s in sets for a in ("--set", s)]]
    with _evaluating_alongside(ctx, report):
        _rlhf(ctx, *args, *(["--resume"] if resume else []))


# --- stage 3: evaluation ------------------------------------------------------------------------


def demo_checkpoint_ids(ctx: DemoContext, trained_only: bool = False) -> list[int]:
    from sqlalchemy import select

    from judging.data.models import Checkpoint, TrainingRun

    names = [_run_name(c) for c in ctx.configs]
    with db_session() as session:
        query = (
            select(Checkpoint.id)
            .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
            .where(TrainingRun.name.in_(names))
            .order_by(TrainingRun.name, Checkpoint.step)
        )
        if trained_only:
            query = query.where(Checkpoint.step > 0)
        return list(session.scalars(query))


def _eval_missing(ctx: DemoContext) -> int:
    from sqlalchemy import select

    from judging.data.models import Evaluation, PromptSet

    ids = demo_checkpoint_ids(ctx)
    with db_session() as session:
        prompt_set = session.scalar(select(PromptSet).where(PromptSet.name == ctx.prompt_set))
        if prompt_set is None:
            return len(ids)
        done = set(
            session.scalars(
                select(Evaluation.checkpoint_id).where(
                    Evaluation.prompt_set_id == prompt_set.id, Evaluation.status == "done"
                )
            )
        )
    return sum(i not in done for i in ids)


def _reference_base(ctx: DemoContext) -> int:
    """The base checkpoint of the first demo run: the reference of both demo studies."""
    return demo_checkpoint_ids(ctx)[0]


def _planned_checkpoints(ctx: DemoContext) -> int:
    """Checkpoints the sweep saves if no run stops early (`training.config.saved_steps`)."""
    from training.config import load_config, saved_steps

    runs = [load_config(Path(config), list(ctx.train_overrides)).run for config in ctx.configs]
    return sum(len(saved_steps(run)) for run in runs)


RATERS_PER_COMPARISON = 2
PEOPLE_SHORTLIST = 4
"""The people's study judges at most this many checkpoints (`_shortlist`): a few hundred items
per person instead of thousands, and as many base responses per prompt."""


def sim_base_reuse(ctx: DemoContext) -> int:
    """Comparisons of the simulated study that share one base response. Each share needs
    disjoint raters (`RATERS_PER_COMPARISON` each); half the raters keeps the assignment slack."""
    return max(1, ctx.sim_raters // (2 * RATERS_PER_COMPARISON))


def _base_replicates_wanted(ctx: DemoContext) -> int:
    # Replicate 0 is the shared-seed sample used for KL and reward (never judged against a
    # checkpoint on the same seed), then the base responses blind judging pairs with the
    # checkpoints (shared by `sim_base_reuse` comparisons in the simulated study, one per
    # shortlisted checkpoint in the people's), plus 2 spares per prompt for attention checks.
    # Planned rather than saved checkpoints: a run stopped early leaves spares, not a shortfall.
    from judging.studies.service import base_samples_needed

    trained = max(len(demo_checkpoint_ids(ctx, trained_only=True)), _planned_checkpoints(ctx))
    simulated = base_samples_needed(trained, sim_base_reuse(ctx))
    return 1 + max(simulated, min(trained, PEOPLE_SHORTLIST)) + 2


def _queue_base_replicates(ctx: DemoContext) -> None:
    """Ask for the base samples of blind judging as one more job: the evaluate stage's workers
    take it beside the checkpoints (not during training: it is one long job, and the background
    worker would make it before any checkpoint, the base being first in the queue)."""
    from sqlalchemy import select

    from judging.data.models import PromptSet
    from judging.evaluation.queue import requeue

    ids = demo_checkpoint_ids(ctx)
    if not ids:
        return
    with db_session() as session:
        prompt_set = session.scalar(select(PromptSet).where(PromptSet.name == ctx.prompt_set))
        if prompt_set is not None:
            requeue(
                session,
                checkpoint_id=ids[0],
                prompt_set_id=prompt_set.id,
                replicates=_base_replicates_wanted(ctx),
            )
            session.commit()


def _base_replicates_missing(ctx: DemoContext) -> bool:
    from sqlalchemy import select

    from judging.data.models import Evaluation, PromptSet

    with db_session() as session:
        evaluation = session.scalar(
            select(Evaluation)
            .join(PromptSet, PromptSet.id == Evaluation.prompt_set_id)
            .where(
                PromptSet.name == ctx.prompt_set,
                Evaluation.checkpoint_id == _reference_base(ctx),
            )
        )
        return (
            evaluation is None
            or evaluation.status != "done"
            or evaluation.replicates < _base_replicates_wanted(ctx)
        )


def _eval_run(ctx: DemoContext, report: Report) -> None:
    report(f"{_eval_missing(ctx)} checkpoints to evaluate on {ctx.prompt_set}")
    _queue_base_replicates(ctx)
    _parallel_rlhf(ctx, _eval_args(ctx), ctx.eval_workers or os.cpu_count() or 1)
    if _base_replicates_missing(ctx):
        wanted = _base_replicates_wanted(ctx)
        report(f"base samples for blind judging: {wanted} per prompt")
        base = ["--checkpoint", str(_reference_base(ctx)), "--replicates", str(wanted)]
        _rlhf(ctx, *_eval_args(ctx), *base)


# --- stage 4: the simulated study ---------------------------------------------------------------


def _study(name: str) -> Any:
    from sqlalchemy import select

    from judging.data.models import Study

    with db_session() as session:
        study = session.scalar(select(Study).where(Study.name == name))
        if study is not None:
            session.expunge(study)
        return study


def _pending_in(study_id: int) -> int:
    from sqlalchemy import func, select

    from judging.data.models import Assignment, Comparison

    with db_session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Assignment)
                .join(Comparison, Comparison.id == Assignment.comparison_id)
                .where(Comparison.study_id == study_id, Assignment.status != "done")
            )
            or 0
        )


def _sim_done() -> bool:
    study = _study(SIM_STUDY)
    return study is not None and _pending_in(study.id) == 0


def _create_study(
    ctx: DemoContext,
    name: str,
    raters: list[str],
    checkpoints: list[int],
    base_reuse: int = 1,
) -> tuple[int, dict[str, str]]:
    """The study over these demo checkpoints; returns its id and the raters' tokens."""
    from sqlalchemy import select

    from judging.data.models import PromptSet
    from judging.studies.raters import invite_rater
    from judging.studies.service import create_study

    with db_session() as session:
        tokens: dict[str, str] = {}
        ids: list[int] = []
        for rater_name in raters:
            rater, token = invite_rater(session, name=rater_name)
            tokens[rater.name] = token
            ids.append(rater.id)
        existing = _study(name)
        if existing is not None:
            return int(existing.id), tokens
        prompt_set = session.scalar(select(PromptSet).where(PromptSet.name == ctx.prompt_set))
        assert prompt_set is not None
        study = create_study(
            session,
            name=name,
            checkpoint_ids=checkpoints,
            prompt_set_id=prompt_set.id,
            rater_ids=ids,
            raters_per_comparison=RATERS_PER_COMPARISON,
            seed=0,
            base_reuse=base_reuse,
        )
        return int(study.id), tokens


def _sim_run(ctx: DemoContext, report: Report) -> None:
    from cli.simulate import gold_scored_study
    from judging.gold import RaterSpec
    from judging.studies.simulated import SIM_PREFIX, run_raters

    names = [f"{SIM_PREFIX}demo-{i:02d}" for i in range(1, ctx.sim_raters + 1)]
    trained = demo_checkpoint_ids(ctx, trained_only=True)
    study_id, tokens = _create_study(ctx, SIM_STUDY, names, trained, sim_base_reuse(ctx))
    report(f"study {study_id}: scoring its responses with the gold preference")
    score = gold_scored_study(study_id)
    todo = _pending_in(study_id)
    counter = {"n": 0}

    def tick(_name: str, _n: int) -> None:
        counter["n"] += 1
        if counter["n"] % 25 == 0 or counter["n"] == todo:
            report(f"study {study_id}: {counter['n']}/{todo} simulated verdicts via {ctx.base_url}")

    spec = RaterSpec(temperature=ctx.rater_temperature, position_bias=ctx.rater_position_bias)
    run_raters(ctx.base_url, tokens, score, spec, seed=0, on_verdict=tick)


# --- stage 5: the recommendation ----------------------------------------------------------------


def recommend_hook(study_id: int) -> dict[str, Any]:
    """The product's recommendation for the simulated study, stored with its history."""
    from judging.analysis.recommendation import refresh_recommendation

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


def _set_result(ctx: DemoContext, key: str, value: Any) -> None:
    from judging.pipeline_status import write_status

    status = read_status(ctx.data_dir)
    if status is not None:
        status.result[key] = value
        write_status(ctx.data_dir, status)


def _result(ctx: DemoContext, key: str) -> Any:
    status = read_status(ctx.data_dir)
    return status.result.get(key) if status else None


def _recommend_run(ctx: DemoContext, report: Report) -> None:
    study = _study(SIM_STUDY)
    assert study is not None
    recommendation = recommend_hook(int(study.id))
    _set_result(ctx, "recommendation", recommendation)
    report(str(recommendation))


# --- stage 6: the study for real people ---------------------------------------------------------


def _shortlist(ctx: DemoContext) -> list[int]:
    """What people should confirm: the recommended checkpoint, the one with the highest held-out
    proxy reward, and the last checkpoint of each run (at most `PEOPLE_SHORTLIST`)."""
    from judging.analysis.evidence import load_study_evidence

    study = _study(SIM_STUDY)
    recommended = (_result(ctx, "recommendation") or {}).get("checkpoint_id")
    with db_session() as session:
        evidence = load_study_evidence(session, int(study.id)).evidence if study else ()
    scored = [e for e in evidence if e.reward is not None]
    best_reward = max(scored, key=lambda e: e.reward.estimate if e.reward else 0.0, default=None)
    last: dict[str, tuple[int, int]] = {}
    for e in evidence:
        if e.run not in last or e.step > last[e.run][0]:
            last[e.run] = (e.step, e.checkpoint_id)
    picks = [recommended, best_reward.checkpoint_id if best_reward else None]
    picks += [checkpoint for _, checkpoint in sorted(last.values())]
    chosen = list(dict.fromkeys(int(p) for p in picks if p is not None))[:PEOPLE_SHORTLIST]
    return chosen or demo_checkpoint_ids(ctx, trained_only=True)[:PEOPLE_SHORTLIST]


def _write_private(path: Path, text: str) -> None:
    """Write invite links atomically, readable by the owner only (mode 600) from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


def _people_run(ctx: DemoContext, report: Report) -> None:
    from judging.studies.raters import invite_url

    shortlist = _shortlist(ctx)
    study_id, tokens = _create_study(ctx, PEOPLE_STUDY, list(ctx.people), shortlist)
    links = {name: invite_url(ctx.base_url, token) for name, token in tokens.items()}
    invites = ctx.data_dir / "demo" / "invites.txt"
    _write_private(invites, "".join(f"{n}\t{u}\n" for n, u in links.items()))
    _set_result(ctx, "people_study_id", study_id)
    for name, url in links.items():
        ctx.echo(f"invite for {name}: {url}")
    report(
        f"study {study_id} for real people on checkpoints {shortlist}; invite links in {invites}"
    )


def build_stages(ctx: DemoContext) -> list[Stage]:
    stages = [
        Stage("reward_model", "Reward model", lambda: _rm_done(ctx), lambda r: _rm_run(ctx, r))
    ]
    for config in ctx.configs:
        name = _run_name(config)
        stages.append(
            Stage(
                f"ppo:{name}",
                f"PPO {name}",
                lambda c=config: _ppo_done(c),
                lambda r, c=config: _ppo_run(ctx, c, r),
            )
        )
    stages += [
        Stage(
            "evaluate",
            "Evaluation",
            lambda: _eval_missing(ctx) == 0 and not _base_replicates_missing(ctx),
            lambda r: _eval_run(ctx, r),
        ),
        Stage(
            "simulated_study",
            "Simulated raters",
            _sim_done,
            lambda r: _sim_run(ctx, r),
        ),
        Stage(
            "recommendation",
            "Recommendation",
            lambda: _result(ctx, "recommendation") is not None,
            lambda r: _recommend_run(ctx, r),
        ),
        Stage(
            "people_study",
            "Study for people",
            lambda: _study(PEOPLE_STUDY) is not None,
            lambda r: _people_run(ctx, r),
        ),
    ]
    return stages


def run_demo(ctx: DemoContext) -> PipelineStatus:
    last = {"line": ""}

    def show(status: PipelineStatus) -> None:
        line = status.summary()
        if line != last["line"]:
            ctx.echo(line)
            last["line"] = line

    return run_stages(build_stages(ctx), ctx.data_dir, on_change=show)


def _context(base_url: str | None) -> DemoContext:
    s = settings()
    return DemoContext(data_dir=s.data_dir, base_url=base_url or f"http://{s.host}:{s.port}")


@app.command("run")
def run(
    base_url: str | None = typer.Option(None, "--base-url", help="The running web app."),
) -> None:
    """Run (or resume) the demo pipeline; the web app must be serving at --base-url."""
    # Explicitly: started in the background by a shell, this process inherits SIGINT ignored,
    # and `demo up` stops it with SIGINT.
    stop_on_signals()
    status = run_demo(_context(base_url))
    console.print(status.summary())


@app.command("status")
def status() -> None:
    """Print the pipeline's status line."""
    current = read_status(settings().data_dir)
    console.print(current.summary() if current else "the demo pipeline has not run yet")


DEMO_ADMIN = "demo-admin"


def admin_link(data_dir: Path, base_url: str) -> str | None:
    """The demo admin's sign-in link (the dashboard is for admins only), or None once it is used.

    Issued on the first `demo up` and kept in `<data dir>/demo/admin-invite.txt` (mode 600) while
    it is unused, so a rerun prints the same link; a fresh one would end a browser's session.
    """
    from sqlalchemy import select

    from judging.data.models import Rater
    from judging.studies.raters import invite_outstanding, invite_rater, invite_url

    kept = data_dir / "demo" / "admin-invite.txt"
    with db_session() as session:
        admin = session.scalar(select(Rater).where(Rater.name == DEMO_ADMIN))
        if admin is not None and admin.active and admin.role == "admin":
            if admin.invite_expires_at is None:
                return None  # used: that browser is signed in
            if invite_outstanding(admin) and kept.is_file():
                return kept.read_text(encoding="utf-8").strip()
        _admin, token = invite_rater(session, name=DEMO_ADMIN, role="admin")
        url = invite_url(base_url, token)
        _write_private(kept, url + "\n")
    return url


@app.command("up")
def up() -> None:
    """Serve the web app now and run the pipeline in the background (`make demo`)."""
    import uvicorn

    s = settings()
    base_url = f"http://{s.host}:{s.port}"
    link = admin_link(s.data_dir, base_url)
    child = subprocess.Popen([sys.executable, "-m", "cli.main", "demo", "run"], cwd=PROJECT_ROOT)
    console.print(f"RLHF lab on [bold]{base_url}/[/bold]  (Ctrl-C stops both)")
    if link:
        console.print(f"Open the dashboard as the demo admin (one-time link): [bold]{link}[/bold]")
    else:
        console.print(
            f"The demo admin link was used; `rlhf raters invite {DEMO_ADMIN} --admin` makes a new"
            " one (and ends the old browser's session)."
        )
    try:
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=s.host,
            port=s.port,
            log_level="warning",
            proxy_headers=False,  # the app applies RLHF_TRUSTED_PROXIES itself
        )
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
            child.wait(timeout=120)
