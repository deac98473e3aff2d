"""Training-time metric series of a run, and their smoothing for plots."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data.models import (
    TrainingMetric,
)

# Training-time series the pages plot: TrainingMetric.name -> label.
TRAINING_METRICS: dict[str, str] = {
    "objective/scores": "RM score (training)",
    "objective/rlhf_reward": "RLHF reward (training)",
    "objective/kl": "KL (training objective/kl)",
    "objective/kl_coef": "KL coefficient",
    "response_length": "Response length (training)",
    "truncation_rate": "Truncation rate (training)",
    "loss": "Loss",
}


@dataclass(frozen=True)
class Series:
    steps: list[int]
    values: list[float]


def metric_series(
    session: Session, run_ids: Sequence[int], names: Iterable[str] | None = None
) -> dict[int, dict[str, Series]]:
    """run id -> metric name -> (steps, values) in step order, in one query."""
    wanted = list(names) if names is not None else list(TRAINING_METRICS)
    out: dict[int, dict[str, Series]] = {rid: {} for rid in run_ids}
    if not run_ids or not wanted:
        return out
    rows = session.execute(
        select(
            TrainingMetric.run_id, TrainingMetric.name, TrainingMetric.step, TrainingMetric.value
        )
        .where(TrainingMetric.run_id.in_(list(run_ids)), TrainingMetric.name.in_(wanted))
        .order_by(TrainingMetric.run_id, TrainingMetric.name, TrainingMetric.step)
    )
    for run_id, name, step, value in rows:
        series = out[run_id].setdefault(name, Series([], []))
        series.steps.append(int(step))
        series.values.append(float(value))
    return out


def smooth(values: Sequence[float], weight: float = 0.6) -> list[float]:
    """TensorBoard's debiased exponential moving average (weight 0 returns the values)."""
    out: list[float] = []
    last, norm = 0.0, 0.0
    for value in values:
        last = weight * last + (1 - weight) * value
        norm = weight * norm + (1 - weight)
        out.append(last / norm)
    return out
