"""The evaluation job queue: one Evaluation row per (checkpoint, prompt set), claimed by workers.

Two workers never take the same job. On PostgreSQL a claim is `SELECT ... FOR UPDATE SKIP LOCKED`
followed by an update in the same transaction; on SQLite (no row locks) it is a conditional
`UPDATE ... WHERE id = ? AND status = ?`, atomic there, and a claim counts only when it changed one
row. A running job whose heartbeat is older than `stale_after_s` is taken over (its worker died),
and so is one whose worker ran on this host and is gone (SIGKILLed: it could not give it back).
Functions flush; claim_next commits its own short transaction because the claim must be visible
to the other workers before the long job starts.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from judging.data.models import (
    Checkpoint,
    Evaluation,
    PromptSet,
    TrainingRun,
)
from judging.errors import NotFoundError

MAX_ERROR_CHARS = 2000


def utcnow() -> datetime:
    return datetime.now(UTC)


def default_prompt_set(session: Session, name: str | None = None) -> PromptSet:
    """The named prompt set, or the first held-out one."""
    query = select(PromptSet)
    query = (
        query.where(PromptSet.name == name) if name else query.where(PromptSet.split == "heldout")
    )
    prompt_set = session.scalar(query.order_by(PromptSet.id).limit(1))
    if prompt_set is None:
        what = f"prompt set {name!r}" if name else "a held-out prompt set"
        raise NotFoundError(f"{what} does not exist; import one with `rlhf prompts import`")
    return prompt_set


def ensure_evaluations(
    session: Session, *, prompt_set_id: int, checkpoint_ids: list[int] | None = None
) -> int:
    """Create pending Evaluation rows for checkpoints that have none on this set; idempotent.

    Runs concurrently in several workers, so it inserts with ON CONFLICT DO NOTHING rather than
    check-then-insert. Returns the number of rows created.
    """
    # A reward-model run's checkpoints are classifiers, not policies, and an external run has no
    # weights here (its responses come in through `rlhf import generations`); nor has a
    # best-of-n run (base + proxy + n: its chosen responses come in through `rlhf ladder import`).
    query = select(Checkpoint.id).join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
    query = query.where(TrainingRun.algorithm.not_in(("rm", "external", "best-of-n"))).where(
        ~select(Evaluation.id)
        .where(Evaluation.checkpoint_id == Checkpoint.id, Evaluation.prompt_set_id == prompt_set_id)
        .exists()
    )
    if checkpoint_ids is not None:
        query = query.where(Checkpoint.id.in_(checkpoint_ids))
    missing = list(session.scalars(query.order_by(Checkpoint.id)))
    if not missing:
        return 0
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    values = [
        {"checkpoint_id": cid, "prompt_set_id": prompt_set_id, "status": "pending", "config": {}}
        for cid in missing
    ]
    insert = dialect.insert(Evaluation).values(values).on_conflict_do_nothing()
    created = session.execute(insert.returning(Evaluation.id)).all()
    session.flush()
    return len(created)


def local_worker_name() -> str:
    """How a worker signs its claims: host and process id, so its death can be seen here."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead_here(worker: str | None) -> bool:
    """A worker of this host whose process no longer exists (a reused pid counts as alive, and
    then the heartbeat's age decides, as for workers on other hosts)."""
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's live process
        return False
    return False


def _orphans(session: Session, prompt_set_id: int) -> list[int]:
    rows = session.execute(
        select(Evaluation.id, Evaluation.worker).where(
            Evaluation.prompt_set_id == prompt_set_id, Evaluation.status == "running"
        )
    )
    return [evaluation_id for evaluation_id, worker in rows if _dead_here(worker)]


def _claimable(session: Session, prompt_set_id: int, stale_after_s: float) -> list[object]:
    stale_before = utcnow() - timedelta(seconds=stale_after_s)
    running = Evaluation.status == "running"
    return [
        Evaluation.prompt_set_id == prompt_set_id,
        or_(
            Evaluation.status == "pending",
            and_(running, Evaluation.heartbeat_at < stale_before),
            and_(running, Evaluation.id.in_(_orphans(session, prompt_set_id))),
        ),
    ]


def claim_next(
    session: Session,
    *,
    worker: str,
    prompt_set_id: int,
    stale_after_s: float = 600.0,
    checkpoint_id: int | None = None,
) -> Evaluation | None:
    """Take the next pending (or stale) job, base checkpoints first, and commit the claim."""
    conditions = _claimable(session, prompt_set_id, stale_after_s)
    if checkpoint_id is not None:
        conditions.append(Evaluation.checkpoint_id == checkpoint_id)
    query = (
        select(Evaluation.id, Evaluation.status)
        .join(Checkpoint, Checkpoint.id == Evaluation.checkpoint_id)
        .where(*conditions)  # type: ignore[arg-type]
        .order_by((Checkpoint.kind != "base"), Checkpoint.step, Evaluation.id)
    )
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        query = query.limit(1).with_for_update(skip_locked=True, of=Evaluation)
    for evaluation_id, status in session.execute(query).all():
        now = utcnow()
        claimed = session.execute(
            update(Evaluation)
            .where(Evaluation.id == evaluation_id, Evaluation.status == status)
            .values(status="running", worker=worker, heartbeat_at=now, error=None)
            .values(started_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) == 1:
            evaluation = session.get(Evaluation, evaluation_id, populate_existing=True)
            assert evaluation is not None
            evaluation.checkpoint.status = "evaluating"
            evaluation.checkpoint.error = None
            session.commit()
            return evaluation
    session.commit()  # releases the locks of a PostgreSQL scan that found nothing
    return None


def release(session: Session, evaluation_id: int, *, worker: str) -> None:
    """Give a claimed job back to the queue now (Ctrl-C): the next worker resumes it at once
    instead of waiting `stale_after_s`; the rows committed so far are kept."""
    session.execute(
        update(Evaluation)
        .where(
            Evaluation.id == evaluation_id,
            Evaluation.status == "running",
            Evaluation.worker == worker,
        )
        .values(status="pending", worker=None, heartbeat_at=None)
        .execution_options(synchronize_session=False)
    )
    evaluation = session.get(Evaluation, evaluation_id, populate_existing=True)
    if evaluation is not None and evaluation.checkpoint.status == "evaluating":
        evaluation.checkpoint.status = "registered"
    session.flush()


def heartbeat(session: Session, evaluation: Evaluation) -> None:
    evaluation.heartbeat_at = utcnow()
    session.flush()


def mark_done(
    session: Session, evaluation: Evaluation, *, summary: dict[str, object], flags: list[str]
) -> None:
    """Write the aggregates; only call once every generation row of the job exists."""
    evaluation.status = "done"
    evaluation.summary = summary
    evaluation.flags = flags
    evaluation.error = None
    evaluation.finished_at = utcnow()
    evaluation.checkpoint.status = "evaluated"
    evaluation.checkpoint.error = None
    session.flush()


def mark_failed(session: Session, evaluation: Evaluation, error: str) -> None:
    """Record the error on the job and on its checkpoint; the rows written so far are kept."""
    message = error.strip()[:MAX_ERROR_CHARS] or "unknown error"
    evaluation.status = "failed"
    evaluation.error = message
    evaluation.finished_at = utcnow()
    evaluation.checkpoint.status = "failed"
    evaluation.checkpoint.error = message
    session.flush()


def requeue(
    session: Session, *, checkpoint_id: int, prompt_set_id: int, replicates: int | None = None
) -> Evaluation:
    """Make one checkpoint's job claimable again (a retry after failure, or a forced re-run).

    `replicates` raises the number of responses per prompt; a finished job becomes pending again
    and a worker fills only the missing samples.
    """
    ensure_evaluations(session, prompt_set_id=prompt_set_id, checkpoint_ids=[checkpoint_id])
    evaluation = session.scalar(
        select(Evaluation).where(
            Evaluation.checkpoint_id == checkpoint_id, Evaluation.prompt_set_id == prompt_set_id
        )
    )
    if evaluation is None:
        raise NotFoundError(f"checkpoint {checkpoint_id} does not exist")
    if evaluation.status == "failed":
        evaluation.status = "pending"
        evaluation.error = None
    if replicates is not None and replicates > evaluation.replicates:
        evaluation.replicates = replicates
        if evaluation.status == "done":
            evaluation.status = "pending"
    session.flush()
    return evaluation
