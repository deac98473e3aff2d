"""A judged study on constructed data: four PPO checkpoints, the last one a length blow-up.

Step 40 has the highest held-out reward, responses ~3x the base's length, a `length_growth>1.5`
flag and a LOWER human win rate than step 20; the recommendation must not pick it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data.models import Assignment, Comparison, Evaluation, Study
from judging.studies import rating
from judging.studies.service import create_study
from tests.judging_helpers import Lab, build_lab

STEPS = (10, 20, 30, 40)
WIN_RATES = {10: 0.5, 20: 0.8, 30: 0.6, 40: 0.35}
REWARDS = {10: 0.4, 20: 0.9, 30: 1.4, 40: 2.6}
KLS = {10: 1.0, 20: 2.5, 30: 5.0, 40: 11.0}
GROWTH = {10: 1.0, 20: 1.1, 30: 1.3, 40: 3.1}
LONG = " It keeps going, restating the point at length, to please the reward model." * 3


@dataclass
class JudgedStudy:
    lab: Lab
    study: Study
    by_step: dict[int, int]
    """Checkpoint id per step."""
    pending: list[tuple[int, str]]
    """(rater id, assignment public id) left unjudged, for tests that add a verdict later."""


def _evaluate(session: Session, lab: Lab) -> None:
    for ckpt in lab.trained:
        s = ckpt.step
        flags = ["length_growth>1.5"] if GROWTH[s] > 1.5 else []
        session.add(
            Evaluation(
                checkpoint_id=ckpt.id,
                prompt_set_id=lab.prompt_set_id,
                status="done",
                summary={
                    "n": len(lab.prompt_ids),
                    "reward": {"mean": REWARDS[s], "ci_low": REWARDS[s] - 0.1,
                               "ci_high": REWARDS[s] + 0.1, "n": len(lab.prompt_ids)},
                    "kl_k3": {"mean": KLS[s], "ci_low": KLS[s] - 0.3, "ci_high": KLS[s] + 0.3,
                              "n": len(lab.prompt_ids)},
                    "length_growth": GROWTH[s],
                    "seq_rep_4": 0.01 * s / 10,
                    "truncation_rate": 0.0,
                },
                flags=flags,
            )
        )  # fmt: skip


def _choice(step: int, prompt: int, side: str) -> str:
    """Deterministic verdicts: the checkpoint wins on a WIN_RATES[step] share of the prompts."""
    wins = (prompt * 7) % 20 < round(20 * WIN_RATES[step])
    other = "right" if side == "left" else "left"
    return side if wins else other


def judged_study(
    session: Session, tmp_path: Path, *, prompts: int = 30, leave: int = 1
) -> JudgedStudy:
    """Create, evaluate and judge; `leave` assignments of the first rater stay pending."""
    texts = {("40", i): f"Variant answers prompt {i} thoroughly.{LONG}" for i in range(prompts)}
    lab = build_lab(session, tmp_path, prompts=prompts, steps=STEPS, texts=texts)
    _evaluate(session, lab)
    study = create_study(
        session,
        name="lc-study",
        checkpoint_ids=[c.id for c in lab.trained],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters],
        raters_per_comparison=2,
        attention_check_rate=0.0,
        seed=1,
    )
    by_step = {c.step: c.id for c in lab.trained}
    step_of = {v: k for k, v in by_step.items()}
    index = {pid: i for i, pid in enumerate(lab.prompt_ids)}
    assignments = session.scalars(
        select(Assignment)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study.id)
        .order_by(Assignment.rater_id, Assignment.id)
    ).all()
    # Left pending: the first rater's first items on step 10 (whatever order the study's
    # construction gave the assignments), so the other checkpoints keep all their verdicts.
    first_rater = assignments[0].rater_id if assignments else None
    left = [
        a
        for a in assignments
        if a.rater_id == first_rater and step_of[a.comparison.checkpoint_id] == 10
    ][:leave]
    pending = [(a.rater_id, a.public_id) for a in left]
    names = {r.id: r.name for r in lab.raters}
    for a in assignments:
        if a in left:
            continue
        comparison = a.comparison
        step = step_of[comparison.checkpoint_id]
        rating.record_judgement(
            session,
            rater_id=a.rater_id,
            public_id=a.public_id,
            choice=_choice(step, index[comparison.prompt_id], a.checkpoint_side),
            rationale=f"=SUM(A1) {names[a.rater_id]} on step {step}",
            idempotency_key=a.public_id,
        )
    return JudgedStudy(lab, study, by_step, pending)


def judge_pending(session: Session, judged: JudgedStudy, *choices: str) -> None:
    """Judge the pending assignments with these choices (default: one tie each)."""
    for n, (rater_id, public_id) in enumerate(judged.pending):
        rating.record_judgement(
            session,
            rater_id=rater_id,
            public_id=public_id,
            choice=choices[n] if n < len(choices) else "tie",
            rationale=None,
            idempotency_key=f"late-{public_id}",
        )
