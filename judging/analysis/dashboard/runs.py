"""Training runs as the research pages list them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from judging.data.models import (
    Checkpoint,
    TrainingRun,
)
from judging.errors import NotFoundError


@dataclass(frozen=True)
class RunSummary:
    id: int
    name: str
    algorithm: str
    status: str
    base_model: str
    reward_model: str | None
    kl_coef: float | None
    """The configured initial KL coefficient (PPO), so runs can be told apart in legends."""
    device: str | None
    compute_spent_seconds: float
    compute_budget: dict[str, Any]
    checkpoints: int
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def legend(self) -> str:
        coef = f" (KL coef {self.kl_coef:g})" if self.kl_coef is not None else ""
        return f"{self.name}{coef}"


def _kl_coef(config: Mapping[str, Any]) -> float | None:
    for key in ("kl_coef", "init_kl_coef", "beta"):
        value = config.get(key)
        if value is None and isinstance(config.get("ppo"), Mapping):
            value = config["ppo"].get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def list_runs(session: Session, run_ids: Sequence[int] | None = None) -> list[RunSummary]:
    """Runs with their checkpoint count, newest first; only `run_ids` when given."""
    counts = (
        select(Checkpoint.run_id, func.count(Checkpoint.id).label("n"))
        .where(Checkpoint.kind == "trained")
        .group_by(Checkpoint.run_id)
        .subquery()
    )
    query = (
        select(TrainingRun, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.run_id == TrainingRun.id)
        .order_by(TrainingRun.created_at.desc(), TrainingRun.id.desc())
    )
    if run_ids is not None:
        query = query.where(TrainingRun.id.in_(list(run_ids)))
    return [
        RunSummary(
            id=run.id,
            name=run.name,
            algorithm=run.algorithm,
            status=run.status,
            base_model=run.base_model,
            reward_model=run.reward_model,
            kl_coef=_kl_coef(run.config or {}),
            device=run.device,
            compute_spent_seconds=float(run.compute_spent_seconds or 0.0),
            compute_budget=dict(run.compute_budget or {}),
            checkpoints=int(n),
            started_at=run.started_at,
            finished_at=run.finished_at,
        )
        for run, n in session.execute(query)
    ]


def get_run(session: Session, run_id: int) -> RunSummary:
    runs = list_runs(session, [run_id])
    if not runs:
        raise NotFoundError(f"training run {run_id} does not exist")
    return runs[0]
