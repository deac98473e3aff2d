"""Read models for pages: plain dataclasses built from queries, never lazy ORM in templates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from judging.models import TrainingRun


@dataclass(frozen=True)
class CheckpointRow:
    id: int
    step: int
    kind: str
    status: str
    reward: float | None
    kl: float | None
    created_at: datetime


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
                )
                for c in run.checkpoints
            ],
        )
        for run in runs
    ]
