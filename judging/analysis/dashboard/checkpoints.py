"""Checkpoints with their held-out evaluation summaries, one point per checkpoint."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data.models import (
    Checkpoint,
    Evaluation,
    TrainingRun,
)
from judging.data.overview import checkpoint_label
from judging.errors import NotFoundError

# Held-out metrics the pages plot and tabulate: key in Evaluation.summary -> label.
HELDOUT_METRICS: dict[str, str] = {
    "reward": "RM score (held-out)",
    "eval_reward": "Evaluation-RM score",
    "kl_k3": "KL k3 (held-out)",
    "kl_k1": "KL k1 (held-out)",
    "length_tokens": "Length (tokens)",
    "length_growth": "Length growth vs base",
    "truncation_rate": "Truncation rate",
    "seq_rep_4": "Seq-rep-4",
    "distinct_1": "Distinct-1",
    "distinct_2": "Distinct-2",
    "self_bleu": "Self-BLEU",
    "headers_rate": "Headers (share)",
    "bullets_rate": "Bullets (share)",
    "bold_rate": "Bold (share)",
    "emoji_rate": "Emoji (share)",
    "refusal_rate": "Refusals (share)",
    "sycophancy_rate": "Sycophancy markers (share)",
}


@dataclass(frozen=True)
class Stat:
    """A held-out metric: a mean, with its 95% interval when the summary has one."""

    value: float
    low: float | None = None
    high: float | None = None


def summary_stat(summary: Mapping[str, Any] | None, key: str) -> Stat | None:
    """A metric of an Evaluation.summary, stored as a number or as {mean, ci_low, ci_high}."""
    raw = (summary or {}).get(key)
    if isinstance(raw, Mapping):
        mean = raw.get("mean")
        if not _number(mean):
            return None
        low, high = raw.get("ci_low"), raw.get("ci_high")
        return Stat(
            float(mean),
            float(low) if _number(low) else None,
            float(high) if _number(high) else None,
        )
    return Stat(float(raw)) if _number(raw) else None


def _number(value: object) -> TypeGuard[float | int]:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


@dataclass(frozen=True)
class CheckpointPoint:
    """One checkpoint (or base) with its train metrics and newest finished held-out evaluation."""

    id: int
    run_id: int
    run_name: str
    algorithm: str
    step: int
    kind: str
    status: str
    kl_coef: float | None
    compute_spent_seconds: float | None
    train: dict[str, float]
    summary: dict[str, Any] | None
    flags: list[str]
    prompt_set_id: int | None

    @property
    def label(self) -> str:
        return checkpoint_label(self.run_name, self.step, self.kind)

    def stat(self, key: str) -> Stat | None:
        return summary_stat(self.summary, key)

    def value(self, key: str) -> float | None:
        stat = self.stat(key)
        return stat.value if stat else None


def checkpoint_points(
    session: Session,
    *,
    run_ids: Sequence[int] | None = None,
    checkpoint_ids: Sequence[int] | None = None,
    prompt_set_id: int | None = None,
) -> list[CheckpointPoint]:
    """Checkpoints by run and step; the held-out summary is the newest finished evaluation
    (on `prompt_set_id` when given). Two queries."""
    query = (
        select(Checkpoint, TrainingRun.name, TrainingRun.algorithm)
        .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
        .order_by(TrainingRun.name, Checkpoint.step)
    )
    if run_ids is not None:
        query = query.where(Checkpoint.run_id.in_(list(run_ids)))
    if checkpoint_ids is not None:
        query = query.where(Checkpoint.id.in_(list(checkpoint_ids)))
    rows = session.execute(query).all()
    ids = [c.id for c, _, _ in rows]
    evaluations = select(
        Evaluation.checkpoint_id, Evaluation.summary, Evaluation.flags, Evaluation.prompt_set_id
    ).where(Evaluation.status == "done", Evaluation.checkpoint_id.in_(ids))
    if prompt_set_id is not None:
        evaluations = evaluations.where(Evaluation.prompt_set_id == prompt_set_id)
    newest: dict[int, tuple[dict[str, Any] | None, list[str], int]] = {}
    for cid, summary, flags, set_id in session.execute(
        evaluations.order_by(Evaluation.finished_at.asc().nulls_first(), Evaluation.id)
    ):
        newest[cid] = (summary, list(flags or []), set_id)
    out = []
    for ckpt, run_name, algorithm in rows:
        summary, flags, set_id = newest.get(ckpt.id, (None, [], None))
        out.append(
            CheckpointPoint(
                id=ckpt.id,
                run_id=ckpt.run_id,
                run_name=run_name,
                algorithm=algorithm,
                step=ckpt.step,
                kind=ckpt.kind,
                status=ckpt.status,
                kl_coef=ckpt.kl_coef,
                compute_spent_seconds=ckpt.compute_spent_seconds,
                train={k: float(v) for k, v in (ckpt.metrics or {}).items() if _number(v)},
                summary=summary,
                flags=flags,
                prompt_set_id=set_id,
            )
        )
    return out


def get_checkpoint_point(session: Session, checkpoint_id: int) -> CheckpointPoint:
    points = checkpoint_points(session, checkpoint_ids=[checkpoint_id])
    if not points:
        raise NotFoundError(f"checkpoint {checkpoint_id} does not exist")
    return points[0]
