"""Per-checkpoint evidence for the recommendation, loaded with a fixed number of SQL queries.

Three sources, each one query whatever the study's size:
- verdicts: one row per judgement on a normal comparison, scored for the checkpoint in SQL (1 win,
  0 loss, 1/2 tie or both bad) with the length difference of the two responses (characters);
- the held-out evaluation summaries on the study's prompt set: reward (mean and CI), the evaluation
  reward model's score when there is one, KL from the base, length growth, repetition, flags;
- training metrics logged at the checkpoint's step (TRL's objective/*), merged over the metrics
  stored on the checkpoint row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select, tuple_
from sqlalchemy.orm import Session, aliased

from judging.data.models import (
    Assignment,
    Checkpoint,
    Comparison,
    Evaluation,
    Generation,
    Judgement,
    Study,
    StudyCheckpoint,
    TrainingMetric,
    TrainingRun,
)
from judging.data.overview import checkpoint_label
from judging.errors import NotFoundError
from judging.stats.bradley_terry import PairVote, Strength, bradley_terry_intervals
from judging.stats.divergence import Estimate
from judging.stats.lc_winrate import LengthVote, lc_win_rate_intervals
from judging.stats.rule import CheckpointEvidence
from judging.stats.winrate import Interval
from judging.studies.counting import auto_ties, counted_verdict

EVAL_REWARD_KEYS = ("eval_reward", "evaluation_reward", "reward_eval")
"""Summary keys under which an evaluation reward model's score may be stored (first found wins)."""
KL_KEYS = ("kl_k3", "kl_k1")
"""Held-out KL estimators in order of preference (k3 is unbiased and never negative)."""


@dataclass(frozen=True)
class CheckpointInfo:
    """Where a checkpoint lives and what produced it (for labels, exports and the model card)."""

    id: int
    label: str
    run_id: int
    run: str
    algorithm: str
    base_model: str
    reward_model: str | None
    step: int
    kind: str
    path: str
    kl_coef: float | None


@dataclass(frozen=True)
class StudyEvidence:
    study_id: int
    study_name: str
    prompt_set_id: int
    reference: CheckpointInfo
    checkpoints: tuple[CheckpointInfo, ...]
    evidence: tuple[CheckpointEvidence, ...]
    """Same order as `checkpoints`."""
    n_judgements: int
    last_judgement_id: int | None


def checkpoint_infos(session: Session, ids: Sequence[int]) -> dict[int, CheckpointInfo]:
    rows = session.execute(
        select(Checkpoint, TrainingRun)
        .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
        .where(Checkpoint.id.in_(list(ids)))
    )
    return {
        c.id: CheckpointInfo(
            c.id,
            checkpoint_label(r.name, c.step, c.kind),
            r.id,
            r.name,
            r.algorithm,
            r.base_model,
            r.reward_model,
            c.step,
            c.kind,
            c.path,
            c.kl_coef,
        )
        for c, r in rows
    }


def study_votes(session: Session, study_id: int) -> dict[int, list[LengthVote]]:
    """Counted verdicts on normal comparisons, per checkpoint, scored in SQL, plus auto ties
    (judging.studies.counting: withdrawn verdicts and excluded raters left out, identical pairs
    one tie per rater slot). The length difference is against the comparison's own reference."""
    candidate, reference = aliased(Generation), aliased(Generation)
    score = case(
        (Judgement.choice.in_(("tie", "both_bad")), 0.5),
        (Judgement.choice == Assignment.checkpoint_side, 1.0),
        else_=0.0,
    )
    query = (
        select(
            Comparison.checkpoint_id,
            Comparison.prompt_id,
            Judgement.id,
            score,
            func.length(candidate.text) - func.length(reference.text),
        )
        .select_from(Judgement)
        .join(Assignment, Assignment.id == Judgement.assignment_id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .join(candidate, candidate.id == Comparison.candidate_generation_id)
        .join(reference, reference.id == Comparison.reference_generation_id)
        .where(Comparison.study_id == study_id, Comparison.kind == "normal", counted_verdict())
    )
    rows: list[tuple[int, int, int, float, float]] = [
        (c, p, j, float(s), float(d)) for c, p, j, s, d in session.execute(query)
    ]
    for tie in auto_ties(session, [study_id]):
        if tie.reference_chars is not None:
            diff = float(tie.candidate_chars - tie.reference_chars)
            rows += [(tie.checkpoint_id, tie.prompt_id, 0, tie.score, diff)] * tie.copies
    out: dict[int, list[LengthVote]] = defaultdict(list)
    for checkpoint_id, prompt_id, _, s, diff in sorted(rows, key=lambda r: r[:3]):
        out[checkpoint_id].append(LengthVote(prompt_id, s, diff))
    return dict(out)


def _estimate(value: object) -> Estimate | None:
    if isinstance(value, Mapping) and isinstance(value.get("mean"), int | float):
        mean = float(value["mean"])
        return Estimate(mean, float(value.get("ci_low", mean)), float(value.get("ci_high", mean)))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Estimate(float(value), float(value), float(value))
    return None


def _first(summary: Mapping[str, Any], keys: Sequence[str]) -> Estimate | None:
    for key in keys:
        found = _estimate(summary.get(key))
        if found is not None:
            return found
    return None


def _scalar(summary: Mapping[str, Any], key: str) -> float | None:
    value = summary.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _repetition(summary: Mapping[str, Any]) -> float | None:
    key = next((k for k in sorted(summary) if k.startswith("seq_rep_")), None)
    return _scalar(summary, key) if key else None


def evaluations(
    session: Session, checkpoint_ids: Sequence[int], prompt_set_id: int
) -> dict[int, tuple[dict[str, Any], list[str]]]:
    """Finished evaluation summary and flags per checkpoint on one prompt set."""
    rows = session.execute(
        select(Evaluation.checkpoint_id, Evaluation.summary, Evaluation.flags).where(
            Evaluation.checkpoint_id.in_(list(checkpoint_ids)),
            Evaluation.prompt_set_id == prompt_set_id,
            Evaluation.status == "done",
        )
    )
    return {c: (dict(s or {}), list(f or [])) for c, s, f in rows}


def train_metrics(session: Session, infos: Sequence[CheckpointInfo]) -> dict[int, dict[str, float]]:
    """Metrics logged at each checkpoint's step, over those stored on the checkpoint row."""
    keys = {(i.run_id, i.step): i.id for i in infos}
    out: dict[int, dict[str, float]] = {i.id: {} for i in infos}
    stored = session.execute(
        select(Checkpoint.id, Checkpoint.metrics).where(Checkpoint.id.in_([i.id for i in infos]))
    )
    for cid, metrics in stored:
        out[cid].update(
            {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, int | float)}
        )
    if keys:
        m = TrainingMetric
        logged = session.execute(
            select(m.run_id, m.step, m.name, m.value).where(
                tuple_(m.run_id, m.step).in_(list(keys))
            )
        )
        for run_id, step, name, value in logged:
            out[keys[(run_id, step)]][name] = float(value)
    return out


def _evidence(
    info: CheckpointInfo,
    votes: Sequence[LengthVote],
    evaluation: tuple[dict[str, Any], list[str]] | None,
    metrics: Mapping[str, float],
) -> CheckpointEvidence:
    summary, flags = evaluation or ({}, [])
    return CheckpointEvidence(
        checkpoint_id=info.id,
        label=info.label,
        run=info.run,
        step=info.step,
        votes=tuple(votes),
        reward=_estimate(summary.get("reward")),
        eval_reward=_first(summary, EVAL_REWARD_KEYS),
        kl=_first(summary, KL_KEYS),
        length_tokens=_scalar(summary, "length_tokens"),
        length_growth=_scalar(summary, "length_growth"),
        repetition=_repetition(summary),
        flags=tuple(flags),
        train_metrics=dict(metrics),
    )


def load_study_evidence(session: Session, study_id: int) -> StudyEvidence:
    """Everything the recommendation needs about a study's checkpoints."""
    study = session.get(Study, study_id)
    if study is None:
        raise NotFoundError(f"study {study_id} does not exist")
    ids = list(
        session.scalars(
            select(StudyCheckpoint.checkpoint_id)
            .where(StudyCheckpoint.study_id == study_id)
            .order_by(StudyCheckpoint.id)
        )
    )
    infos = checkpoint_infos(session, [*ids, study.reference_checkpoint_id])
    ordered = sorted((infos[i] for i in ids), key=lambda i: (i.run, i.step))
    votes = study_votes(session, study_id)
    evals = evaluations(session, ids, study.prompt_set_id)
    metrics = train_metrics(session, ordered)
    count, last = session.execute(
        select(func.count(Judgement.id), func.max(Judgement.id))
        .join(Assignment, Assignment.id == Judgement.assignment_id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study_id, counted_verdict())
    ).one()
    return StudyEvidence(
        study_id=study.id,
        study_name=study.name,
        prompt_set_id=study.prompt_set_id,
        reference=infos[study.reference_checkpoint_id],
        checkpoints=tuple(ordered),
        evidence=tuple(
            _evidence(i, votes.get(i.id, []), evals.get(i.id), metrics[i.id]) for i in ordered
        ),
        n_judgements=int(count),
        last_judgement_id=last,
    )


def pair_votes(session: Session, study_ids: Sequence[int]) -> list[PairVote]:
    """Each study's verdicts as checkpoint-vs-reference pairs, for a Bradley-Terry fit."""
    references = dict(
        session.execute(
            select(Study.id, Study.reference_checkpoint_id).where(Study.id.in_(list(study_ids)))
        ).all()
    )
    missing = sorted(set(study_ids) - set(references))
    if missing:
        raise NotFoundError(f"study {missing[0]} does not exist")
    out = []
    for sid in study_ids:
        for checkpoint_id, votes in study_votes(session, sid).items():
            out += [PairVote(v.prompt_id, checkpoint_id, references[sid], v.score) for v in votes]
    return out


def bradley_terry_strengths(
    session: Session,
    study_ids: Sequence[int],
    *,
    anchor: int | None = None,
    n_boot: int = 500,
    seed: int = 0,
) -> dict[int, Strength]:
    """Strengths of every judged checkpoint and the references, in log-odds against `anchor`
    (default: the first study's reference, usually the base), with prompt-clustered intervals.
    Studies with different references link up through the checkpoints they share."""
    votes = pair_votes(session, study_ids)
    if anchor is None:
        anchor = session.scalar(
            select(Study.reference_checkpoint_id).where(Study.id == study_ids[0])
        )
    strengths = bradley_terry_intervals(votes, anchor=anchor, n_boot=n_boot, seed=seed)
    return {k: v for k, v in strengths.items() if isinstance(k, int)}


def study_lc_intervals(
    session: Session, study_id: int, *, n_boot: int = 1000, seed: int = 0
) -> dict[int, Interval]:
    """LC win rate per checkpoint of a study, with the length slope shared across its checkpoints
    (the estimate the recommendation ranks by, same seed and resamples give the same numbers)."""
    return lc_win_rate_intervals(study_votes(session, study_id), n_boot=n_boot, seed=seed)


def checkpoint_evidence(
    session: Session, ids: Sequence[int], prompt_set_id: int
) -> dict[int, CheckpointEvidence]:
    """Evaluation and training evidence of checkpoints, with no votes (callers add their own)."""
    infos = checkpoint_infos(session, ids)
    ordered = [infos[i] for i in ids]
    evals = evaluations(session, ids, prompt_set_id)
    metrics = train_metrics(session, ordered)
    return {i.id: _evidence(i, [], evals.get(i.id), metrics[i.id]) for i in ordered}
