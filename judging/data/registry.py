"""The checkpoint registry: the only way training code writes runs, checkpoints and metrics.

Functions take an explicit session, flush but never commit: the caller owns the transaction, so a
checkpoint and its metrics land together or not at all. Every write is idempotent on its natural
key, so a resumed run re-registering a step never duplicates a row.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from judging.data.models import (
    Checkpoint,
    Comparison,
    Evaluation,
    Generation,
    TrainingMetric,
    TrainingRun,
)
from judging.errors import ConflictError, NotFoundError


def utcnow() -> datetime:
    return datetime.now(UTC)


def directory_checksum(path: str | Path) -> tuple[str, int]:
    """sha256 over every file's relative name and bytes, in sorted order; plus total size."""
    root = Path(path)
    digest = hashlib.sha256()
    total = 0
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(root) if file != root else file.name).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
                total += len(block)
    return digest.hexdigest(), total


def get_run(session: Session, run_id: int) -> TrainingRun:
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise NotFoundError(f"training run {run_id} does not exist")
    return run


def get_run_by_name(session: Session, name: str) -> TrainingRun | None:
    return session.scalar(select(TrainingRun).where(TrainingRun.name == name))


def start_run(
    session: Session,
    *,
    name: str,
    algorithm: str,
    base_model: str,
    config: dict[str, Any],
    reward_model: str | None = None,
    output_dir: str | None = None,
    compute_budget: dict[str, Any] | None = None,
    device: str | None = None,
    resume: bool = False,
) -> TrainingRun:
    """Create a run, or with `resume=True` reopen the run of that name."""
    run = get_run_by_name(session, name)
    if run is not None and not resume:
        raise ConflictError(
            f"a run named {name!r} already exists; pass --resume or pick a new name"
        )
    if run is not None and run.algorithm != algorithm:
        raise ConflictError(f"run {name!r} is a {run.algorithm} run, not {algorithm}")
    if run is None:
        run = TrainingRun(
            name=name,
            algorithm=algorithm,
            base_model=base_model,
            reward_model=reward_model,
            config=config,
            output_dir=output_dir,
            compute_budget=compute_budget or {},
            device=device,
        )
        session.add(run)
    run.status = "running"
    run.error = None
    run.started_at = run.started_at or utcnow()
    run.finished_at = None
    session.flush()
    return run


def finish_run(
    session: Session, run: TrainingRun, *, status: str = "finished", error: str | None = None
) -> None:
    run.status = status
    run.error = error
    run.finished_at = utcnow()
    session.flush()


def add_compute(session: Session, run: TrainingRun, seconds: float) -> None:
    run.compute_spent_seconds = (run.compute_spent_seconds or 0.0) + seconds
    session.flush()


def ensure_base_checkpoint(session: Session, run: TrainingRun) -> Checkpoint:
    """Step 0 of every run stands for its untrained starting model (the usual judging reference)."""
    existing = session.scalar(
        select(Checkpoint).where(Checkpoint.run_id == run.id, Checkpoint.step == 0)
    )
    if existing is not None:
        return existing
    base = Checkpoint(
        run_id=run.id,
        step=0,
        kind="base",
        path=run.base_model,
        metrics={},
        compute_spent_seconds=0.0,
    )
    session.add(base)
    session.flush()
    return base


def _finite(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Keep numeric, finite values only: JSON has no NaN and a metric of NaN is no metric."""
    clean: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(float(value)):
            clean[key] = float(value)
    return clean


def invalidate_checkpoint(session: Session, checkpoint: Checkpoint, reason: str) -> int:
    """The checkpoint's files changed: drop its generations and re-queue its evaluations.

    Responses, scores and summaries of the old weights describe a model that no longer exists
    at that path. Responses already shown to human raters are kept and refused: a study must
    not silently switch models under its judgements. Returns the number of evaluations re-queued.
    """
    judged = session.scalar(
        select(Comparison.study_id).where(Comparison.checkpoint_id == checkpoint.id).limit(1)
    )
    if judged is not None:
        raise ConflictError(
            f"checkpoint {checkpoint.id} (step {checkpoint.step}) changed on disk ({reason}) but "
            f"study {judged} already has human comparisons of it; restore the old files or "
            "register the new weights under another run"
        )
    session.execute(delete(Generation).where(Generation.checkpoint_id == checkpoint.id))
    evaluations = list(
        session.scalars(select(Evaluation).where(Evaluation.checkpoint_id == checkpoint.id))
    )
    for evaluation in evaluations:
        evaluation.status = "pending"
        evaluation.summary = None
        evaluation.flags = None
        evaluation.error = None
        evaluation.worker = None
        evaluation.heartbeat_at = None
        evaluation.started_at = None
        evaluation.finished_at = None
    checkpoint.status = "registered"
    checkpoint.error = None
    session.flush()
    return len(evaluations)


def register_checkpoint(
    session: Session,
    *,
    run_id: int,
    step: int,
    path: str | Path,
    metrics: Mapping[str, Any] | None = None,
    kl_coef: float | None = None,
    compute_spent_seconds: float | None = None,
    checksum: str | None = None,
) -> Checkpoint:
    """Register the checkpoint saved at `step`; calling it again for the same step updates it.

    When the files changed since the last registration (a resumed run retrained and overwrote
    the step), the old weights' generations are deleted and their evaluations re-queued.
    """
    get_run(session, run_id)
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"checkpoint path {path} does not exist")
    size: int | None = None
    if checksum is None:
        checksum, size = directory_checksum(path)
    checkpoint = session.scalar(
        select(Checkpoint).where(Checkpoint.run_id == run_id, Checkpoint.step == step)
    )
    if checkpoint is None:
        checkpoint = Checkpoint(run_id=run_id, step=step, kind="trained")
        session.add(checkpoint)
    elif checkpoint.checksum is not None and checkpoint.checksum != checksum:
        invalidate_checkpoint(session, checkpoint, reason=f"checksum {checkpoint.checksum[:12]}")
    checkpoint.path = str(path)
    checkpoint.checksum = checksum
    checkpoint.size_bytes = size
    checkpoint.metrics = _finite(metrics or {})
    checkpoint.kl_coef = kl_coef
    checkpoint.compute_spent_seconds = compute_spent_seconds
    session.flush()
    return checkpoint


def record_metrics(session: Session, *, run_id: int, step: int, metrics: Mapping[str, Any]) -> int:
    """Upsert one step's scalars into the time series; returns how many were written."""
    clean = _finite(metrics)
    if not clean:
        return 0
    existing = {
        row.name: row
        for row in session.scalars(
            select(TrainingMetric).where(
                TrainingMetric.run_id == run_id,
                TrainingMetric.step == step,
                TrainingMetric.name.in_(list(clean)),
            )
        )
    }
    for name, value in clean.items():
        if name in existing:
            existing[name].value = value
        else:
            session.add(TrainingMetric(run_id=run_id, step=step, name=name, value=value))
    session.flush()
    return len(clean)


def list_runs(session: Session) -> list[TrainingRun]:
    return list(session.scalars(select(TrainingRun).order_by(TrainingRun.created_at.desc())))


def get_checkpoint(session: Session, checkpoint_id: int) -> Checkpoint:
    checkpoint = session.get(Checkpoint, checkpoint_id)
    if checkpoint is None:
        raise NotFoundError(f"checkpoint {checkpoint_id} does not exist")
    return checkpoint
