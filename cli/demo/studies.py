"""The demo's studies (the ladder's, the PPO sweep's, the people's): which checkpoints they judge,
how many base samples they need, and their creation (idempotent: a rerun finds the study and
only re-issues the raters' tokens)."""

from __future__ import annotations

from pathlib import Path

from cli.common import db_session
from cli.demo import queries
from cli.demo.context import SIM_STUDY, DemoContext
from cli.demo.status import get_result
from judging.evaluation.queue import default_prompt_set
from judging.studies.evidence import load_study_evidence
from judging.studies.pairing import base_samples_needed
from judging.studies.raters import invite_rater
from judging.studies.service import create_study
from training.config import load_config, saved_steps

RATERS_PER_COMPARISON = 2
LADDER_BASE_REUSE = 5
"""The ladder study's reference has one base sample per prompt (n_max 1), shared by the five
rungs BoN(1..16): each comparison of a prompt goes to its own raters (`ladder_raters`)."""
PEOPLE_SHORTLIST = 4
"""The people's study judges at most this many checkpoints (`shortlist`): a few hundred items
per person instead of thousands, and as many base responses per prompt."""


def demo_checkpoint_ids(ctx: DemoContext, trained_only: bool = False) -> list[int]:
    return queries.checkpoint_ids(ctx.run_names(), trained_only)


def reference_base(ctx: DemoContext) -> int:
    """The base checkpoint of the first demo run: the reference of both demo studies."""
    return demo_checkpoint_ids(ctx)[0]


def planned_checkpoints(ctx: DemoContext) -> int:
    """Checkpoints the sweep saves if no run stops early (`training.config.saved_steps`)."""
    runs = [load_config(Path(config), list(ctx.train_overrides)).run for config in ctx.configs]
    return sum(len(saved_steps(run)) for run in runs)


def sim_base_reuse(ctx: DemoContext) -> int:
    """Comparisons of the simulated study that share one base response. Each share needs
    disjoint raters (`RATERS_PER_COMPARISON` each); half the raters keeps the assignment slack."""
    return max(1, ctx.sim_raters // (2 * RATERS_PER_COMPARISON))


def ladder_raters(ctx: DemoContext) -> int:
    """Simulated raters of the ladder study: enough for `LADDER_BASE_REUSE` comparisons to share
    a base response, each with its own `RATERS_PER_COMPARISON` raters."""
    return max(ctx.sim_raters, LADDER_BASE_REUSE * RATERS_PER_COMPARISON)


def base_replicates_wanted(ctx: DemoContext) -> int:
    # Replicate 0 is the shared-seed sample used for KL and reward (never judged against a
    # checkpoint on the same seed), then the base responses blind judging pairs with the
    # checkpoints (shared by `sim_base_reuse` comparisons in the simulated study, one per
    # shortlisted checkpoint in the people's), plus 2 spares per prompt for attention checks.
    # Planned rather than saved checkpoints: a run stopped early leaves spares, not a shortfall.
    trained = max(len(demo_checkpoint_ids(ctx, trained_only=True)), planned_checkpoints(ctx))
    simulated = base_samples_needed(trained, sim_base_reuse(ctx))
    return 1 + max(simulated, min(trained, PEOPLE_SHORTLIST)) + 2


def create_demo_study(
    ctx: DemoContext,
    name: str,
    raters: list[str],
    checkpoints: list[int],
    base_reuse: int = 1,
    reference: int | None = None,
) -> tuple[int, dict[str, str]]:
    """The study over these demo checkpoints against `reference`, by default `reference_base`:
    the base the evaluate stage made blind-judging samples for. (Left to `create_study`, the
    reference would be the base of the first checkpoint's run, which has none when that is the
    second run's.) Returns its id and the raters' tokens."""
    with db_session() as session:
        tokens: dict[str, str] = {}
        ids: list[int] = []
        for rater_name in raters:
            rater, token = invite_rater(session, name=rater_name)
            tokens[rater.name] = token
            ids.append(rater.id)
        existing = queries.study_by_name(name)
        if existing is not None:
            return int(existing.id), tokens
        study = create_study(
            session,
            name=name,
            checkpoint_ids=checkpoints,
            prompt_set_id=default_prompt_set(session, ctx.prompt_set).id,
            rater_ids=ids,
            reference_checkpoint_id=reference if reference is not None else reference_base(ctx),
            raters_per_comparison=RATERS_PER_COMPARISON,
            seed=0,
            base_reuse=base_reuse,
        )
        return int(study.id), tokens


def shortlist(ctx: DemoContext) -> list[int]:
    """What people should confirm: the recommended checkpoint, the one with the highest held-out
    proxy reward, and the last checkpoint of each run (at most `PEOPLE_SHORTLIST`)."""
    study = queries.study_by_name(SIM_STUDY)
    recommended = (get_result(ctx.data_dir, "recommendation") or {}).get("checkpoint_id")
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
