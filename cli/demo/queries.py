"""What the demo's stages ask the database, each in a session of its own (rows come back detached).

Through the core's functions where it has one; the rest are the few counts only the demo needs.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cli.common import db_session
from judging.data.models import Assignment, Checkpoint, Comparison, Evaluation, Study, TrainingRun
from judging.data.registry import get_run_by_name
from judging.errors import NotFoundError
from judging.evaluation.queue import default_prompt_set


def prompt_set_id(session: Session, name: str) -> int | None:
    try:
        return int(default_prompt_set(session, name).id)
    except NotFoundError:
        return None


def training_run(name: str) -> TrainingRun | None:
    with db_session() as session:
        run = get_run_by_name(session, name)
        if run is not None:
            session.expunge(run)
        return run


def checkpoint_ids(run_names: Sequence[str], trained_only: bool = False) -> list[int]:
    """The runs' checkpoints, run by run in name order, each run's by step."""
    with db_session() as session:
        query = (
            select(Checkpoint.id)
            .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
            .where(TrainingRun.name.in_(run_names))
            .order_by(TrainingRun.name, Checkpoint.step)
        )
        if trained_only:
            query = query.where(Checkpoint.step > 0)
        return list(session.scalars(query))


def evaluations_missing(checkpoints: Sequence[int], prompt_set: str) -> int:
    """How many of the checkpoints have no finished evaluation on the prompt set."""
    with db_session() as session:
        set_id = prompt_set_id(session, prompt_set)
        if set_id is None:
            return len(checkpoints)
        done = set(
            session.scalars(
                select(Evaluation.checkpoint_id).where(
                    Evaluation.prompt_set_id == set_id, Evaluation.status == "done"
                )
            )
        )
    return sum(i not in done for i in checkpoints)


def evaluation(checkpoint_id: int, prompt_set: str) -> Evaluation | None:
    with db_session() as session:
        set_id = prompt_set_id(session, prompt_set)
        if set_id is None:
            return None
        found = session.scalar(
            select(Evaluation).where(
                Evaluation.prompt_set_id == set_id, Evaluation.checkpoint_id == checkpoint_id
            )
        )
        if found is not None:
            session.expunge(found)
        return found


def study_by_name(name: str) -> Study | None:
    with db_session() as session:
        study = session.scalar(select(Study).where(Study.name == name))
        if study is not None:
            session.expunge(study)
        return study


def assignments_pending(study_id: int) -> int:
    """Assignments of the study not yet done (pending or under way)."""
    with db_session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Assignment)
                .join(Comparison, Comparison.id == Assignment.comparison_id)
                .where(Comparison.study_id == study_id, Assignment.status != "done")
            )
            or 0
        )
