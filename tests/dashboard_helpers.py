"""Builders for the research pages: runs with training curves, evaluated checkpoints, verdicts.

`build_research_lab` makes a PPO run (base + trained checkpoints), optionally a second PPO run and
a DPO reference run, held-out evaluations whose summaries are given per step, a study judged by
two raters with verdicts chosen per (checkpoint, prompt, rater), and training metrics.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data import registry
from judging.data.models import (
    Assignment,
    Checkpoint,
    Comparison,
    Evaluation,
    Generation,
    Judgement,
    Study,
)
from judging.studies import service as studies
from tests.judging_helpers import Lab, build_lab

# winner for (checkpoint step, prompt index, rater index): checkpoint, reference, tie or both_bad.
VerdictFn = Callable[[int, int, int], str | None]


@dataclass
class ResearchLab:
    lab: Lab
    study: Study
    admin_token: str
    rater_token: str


def summary(
    reward: float, kl: float, length: float, *, ci: float = 0.1, **extra: float
) -> dict[str, Any]:
    """An Evaluation.summary shaped like judging.evaluation.results.finalize writes it."""
    return {
        "n": 4,
        "reward": {"mean": reward, "ci_low": reward - ci, "ci_high": reward + ci, "n": 4},
        "kl_k3": {"mean": kl, "ci_low": max(kl - ci, 0.0), "ci_high": kl + ci, "n": 4},
        "length_tokens": length,
        "truncation_rate": extra.pop("truncation_rate", 0.0),
        "seq_rep_4": extra.pop("seq_rep_4", 0.05),
        "distinct_1": extra.pop("distinct_1", 0.5),
        "distinct_2": extra.pop("distinct_2", 0.8),
        "self_bleu": extra.pop("self_bleu", 0.2),
        "refusal_rate": extra.pop("refusal_rate", 0.0),
        "sycophancy_rate": extra.pop("sycophancy_rate", 0.0),
        "headers_rate": 0.0,
        "bullets_rate": extra.pop("bullets_rate", 0.25),
        "bold_rate": 0.0,
        "emoji_rate": 0.0,
        **extra,
    }


def add_evaluation(
    session: Session,
    checkpoint: Checkpoint,
    prompt_set_id: int,
    summary_: Mapping[str, Any],
    flags: Sequence[str] = (),
) -> None:
    session.add(
        Evaluation(
            checkpoint_id=checkpoint.id,
            prompt_set_id=prompt_set_id,
            status="done",
            summary=dict(summary_),
            flags=list(flags),
            finished_at=datetime.now(UTC),
        )
    )


def judge_all(session: Session, study_id: int, verdict: VerdictFn, rater_ids: Sequence[int]) -> int:
    """Write a judgement for every assignment whose verdict function returns a winner."""
    rows = session.execute(
        select(Assignment, Comparison.prompt_id, Checkpoint.step)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .join(Checkpoint, Checkpoint.id == Comparison.checkpoint_id)
        .where(Comparison.study_id == study_id, Comparison.kind == "normal")
    ).all()
    prompt_index = {
        pid: i
        for i, pid in enumerate(
            sorted({pid for _, pid, _ in rows})  # prompt ids are in position order
        )
    }
    count = 0
    for assignment, prompt_id, step in rows:
        winner = verdict(step, prompt_index[prompt_id], list(rater_ids).index(assignment.rater_id))
        if winner is None:
            continue
        other = "left" if assignment.checkpoint_side == "right" else "right"
        choice = {"checkpoint": assignment.checkpoint_side, "reference": other}.get(winner, winner)
        assignment.status = "done"
        session.add(
            Judgement(
                assignment_id=assignment.id,
                choice=choice,
                rationale=f"rationale {assignment.rater_id}/{prompt_id}",
                time_on_item_ms=1000,
                idempotency_key=uuid.uuid4().hex,
            )
        )
        count += 1
    session.flush()
    return count


def build_research_lab(
    session: Session,
    tmp_path: Path,
    *,
    prompts: int = 4,
    steps: tuple[int, ...] = (10, 20),
    summaries: Mapping[int, Mapping[str, Any]] | None = None,
    verdict: VerdictFn | None = None,
    texts: dict[tuple[str, int], str] | None = None,
    run_name: str = "ppo-research",
    kl_coef: float = 0.05,
    metrics: Mapping[int, Mapping[str, float]] | None = None,
) -> ResearchLab:
    """`summaries[step]` is the held-out summary of a step (0 = base); `verdict` decides votes."""
    lab = build_lab(
        session,
        tmp_path,
        prompts=prompts,
        steps=steps,
        raters=("alice", "bob", "admin"),
        run_name=run_name,
        texts=texts,
    )
    run = lab.base.run
    run.config = {"kl_coef": kl_coef}
    run.compute_spent_seconds = 123.0
    run.compute_budget = {"max_steps": max(steps)}
    run.device = "cpu"
    for step, values in (metrics or {}).items():
        registry.record_metrics(session, run_id=run.id, step=step, metrics=values)
    for ckpt in [lab.base, *lab.trained]:
        if summaries and ckpt.step in summaries:
            add_evaluation(session, ckpt, lab.prompt_set_id, summaries[ckpt.step])
            ckpt.status = "evaluated"
    # Lengths in the drill-down: token counts follow the text, so the LC covariate is real.
    for gen in session.scalars(
        select(Generation).where(Generation.checkpoint_id.in_([c.id for c in lab.trained]))
    ):
        gen.token_count = len(gen.text.split())
    study = studies.create_study(
        session,
        name=f"{run_name}-study",
        checkpoint_ids=[c.id for c in lab.trained],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[lab.raters[0].id, lab.raters[1].id],
        attention_check_rate=0,
        seed=3,
    )
    if verdict is not None:
        judge_all(session, study.id, verdict, [lab.raters[0].id, lab.raters[1].id])
    session.flush()
    return ResearchLab(lab, study, lab.tokens["admin"], lab.tokens["alice"])


def add_run(
    session: Session,
    tmp_path: Path,
    research: ResearchLab,
    *,
    name: str,
    algorithm: str = "ppo",
    kl_coef: float | None = None,
    steps: tuple[int, ...] = (10, 20),
    summaries: Mapping[int, Mapping[str, Any]] | None = None,
    metrics: Mapping[int, Mapping[str, float]] | None = None,
    verdict: VerdictFn | None = None,
) -> list[Checkpoint]:
    """Another run on the same prompts (e.g. PPO at another KL coefficient, or a DPO reference),
    with responses, held-out summaries and, given `verdict`, a study of its own against its base."""
    lab = research.lab
    run = registry.start_run(
        session,
        name=name,
        algorithm=algorithm,
        base_model="models/base",
        config={"kl_coef": kl_coef} if kl_coef is not None else {},
    )
    run.compute_spent_seconds = 60.0 * len(steps)
    base = registry.ensure_base_checkpoint(session, run)
    checkpoints = [base]
    for step in steps:
        folder = tmp_path / f"{name}-checkpoint-{step}"
        folder.mkdir(exist_ok=True)
        (folder / "adapter_model.safetensors").write_bytes(b"w" * step)
        checkpoints.append(
            registry.register_checkpoint(session, run_id=run.id, step=step, path=folder)
        )
    for ckpt in checkpoints:
        # Blind judging pairs every checkpoint with its own base sample: the base also gets
        # one replicate per trained step, on seeds 1.. (no checkpoint uses them), distinct texts.
        takes = range(len(steps) + 1) if ckpt.kind == "base" else range(1)
        for i, pid in enumerate(lab.prompt_ids):
            words = " ".join(["word"] * (5 + ckpt.step // 5))
            for r in takes:
                session.add(
                    Generation(
                        checkpoint_id=ckpt.id,
                        prompt_id=pid,
                        text=f"{name} answer {i} at {ckpt.step}: {words}."
                        + (f" Take {r}." if r else ""),
                        token_count=8 + ckpt.step // 5,
                        finish_reason="stop",
                        backend="import",
                        seed=r,
                        replicate=r,
                        reward_score=0.01 * ckpt.step,
                        kl_k3=0.02 * ckpt.step,
                    )
                )
        if summaries and ckpt.step in summaries:
            add_evaluation(session, ckpt, lab.prompt_set_id, summaries[ckpt.step])
    for step, values in (metrics or {}).items():
        registry.record_metrics(session, run_id=run.id, step=step, metrics=values)
    session.flush()
    if verdict is not None:
        raters = [lab.raters[0].id, lab.raters[1].id]
        study = studies.create_study(
            session,
            name=f"{name}-study",
            checkpoint_ids=[c.id for c in checkpoints[1:]],
            prompt_set_id=lab.prompt_set_id,
            rater_ids=raters,
            attention_check_rate=0,
            seed=4,
        )
        judge_all(session, study.id, verdict, raters)
    return checkpoints
