"""Read models for pages: plain dataclasses built from queries, never lazy ORM in templates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from judging.data.models import Evaluation, TrainingRun


@dataclass(frozen=True)
class HeldOutRow:
    """A finished evaluation on a held-out set, as the index shows it."""

    n: int
    reward: float | None
    kl_k3: float | None
    length_tokens: float | None
    flags: list[str]


@dataclass(frozen=True)
class CheckpointRow:
    id: int
    step: int
    kind: str
    status: str
    reward: float | None
    kl: float | None
    created_at: datetime
    heldout: HeldOutRow | None = None


def _mean(summary: dict[str, object], key: str) -> float | None:
    value = summary.get(key)
    if isinstance(value, dict):
        value = value.get("mean")
    return float(value) if isinstance(value, int | float) else None


def _heldout_rows(session: Session) -> dict[int, HeldOutRow]:
    """The newest finished evaluation of each checkpoint."""
    rows: dict[int, HeldOutRow] = {}
    done = session.scalars(
        select(Evaluation).where(Evaluation.status == "done").order_by(Evaluation.finished_at)
    )
    for evaluation in done:
        summary = evaluation.summary or {}
        rows[evaluation.checkpoint_id] = HeldOutRow(
            n=int(summary.get("n", 0)),
            reward=_mean(summary, "reward"),
            kl_k3=_mean(summary, "kl_k3"),
            length_tokens=_mean(summary, "length_tokens"),
            flags=list(evaluation.flags or []),
        )
    return rows


@dataclass(frozen=True)
class RunOverview:
    id: int
    name: str
    algorithm: str
    base_model: str
    status: str
    compute_spent_seconds: float
    created_at: datetime
    checkpoints: list[CheckpointRow] = field(default_factory=list)


def run_overviews(session: Session) -> list[RunOverview]:
    heldout = _heldout_rows(session)
    runs = session.scalars(
        select(TrainingRun)
        .options(selectinload(TrainingRun.checkpoints))
        .order_by(TrainingRun.created_at.desc(), TrainingRun.id.desc())
    )
    return [
        RunOverview(
            id=run.id,
            name=run.name,
            algorithm=run.algorithm,
            base_model=run.base_model,
            status=run.status,
            compute_spent_seconds=run.compute_spent_seconds or 0.0,
            created_at=run.created_at,
            checkpoints=[
                CheckpointRow(
                    id=c.id,
                    step=c.step,
                    kind=c.kind,
                    status=c.status,
                    reward=c.metrics.get("objective/scores"),
                    kl=c.metrics.get("objective/kl"),
                    created_at=c.created_at,
                    heldout=heldout.get(c.id),
                )
                for c in run.checkpoints
            ],
        )
        for run in runs
    ]


def checkpoint_label(run: str, step: int, kind: str) -> str:
    """How every page, export and report names a checkpoint: `run@base` or `run@step`."""
    return f"{run}@base" if kind == "base" else f"{run}@{step}"
