"""Studies as the research pages show them, and their latest recommendation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from judging.data.models import (
    Assignment,
    Checkpoint,
    Comparison,
    Judgement,
    PromptSet,
    Recommendation,
    Study,
    StudyCheckpoint,
    TrainingRun,
)
from judging.data.overview import checkpoint_label
from judging.errors import NotFoundError
from judging.studies.counting import counted_verdict


@dataclass(frozen=True)
class StudyInfo:
    id: int
    name: str
    status: str
    reference_checkpoint_id: int
    reference_label: str
    prompt_set_id: int
    prompt_set_name: str
    checkpoint_ids: list[int]
    raters_per_comparison: int


def get_study_info(session: Session, study_id: int) -> StudyInfo:
    row = session.execute(
        select(Study, PromptSet.name, TrainingRun.name, Checkpoint.step, Checkpoint.kind)
        .join(PromptSet, PromptSet.id == Study.prompt_set_id)
        .join(Checkpoint, Checkpoint.id == Study.reference_checkpoint_id)
        .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
        .where(Study.id == study_id)
    ).first()
    if row is None:
        raise NotFoundError(f"study {study_id} does not exist")
    study, set_name, run_name, step, kind = row
    ids = list(
        session.scalars(
            select(StudyCheckpoint.checkpoint_id)
            .where(StudyCheckpoint.study_id == study_id)
            .order_by(StudyCheckpoint.checkpoint_id)
        )
    )
    return StudyInfo(
        id=study.id,
        name=study.name,
        status=study.status,
        reference_checkpoint_id=study.reference_checkpoint_id,
        reference_label=checkpoint_label(run_name, step, kind),
        prompt_set_id=study.prompt_set_id,
        prompt_set_name=set_name,
        checkpoint_ids=ids,
        raters_per_comparison=study.raters_per_comparison,
    )


@dataclass(frozen=True)
class StudyLink:
    id: int
    name: str
    status: str
    verdicts: int


def list_studies(session: Session, checkpoint_ids: Sequence[int] | None = None) -> list[StudyLink]:
    """Studies (those judging any of `checkpoint_ids` when given) with their verdict counts."""
    verdicts = (
        select(Comparison.study_id, func.count(Judgement.id).label("n"))
        .join(Assignment, Assignment.comparison_id == Comparison.id)
        .join(Judgement, Judgement.assignment_id == Assignment.id)
        .where(Comparison.kind == "normal", counted_verdict())
        .group_by(Comparison.study_id)
        .subquery()
    )
    query = (
        select(Study.id, Study.name, Study.status, func.coalesce(verdicts.c.n, 0))
        .outerjoin(verdicts, verdicts.c.study_id == Study.id)
        .order_by(Study.created_at.desc(), Study.id.desc())
    )
    if checkpoint_ids is not None:
        members = select(StudyCheckpoint.study_id).where(
            StudyCheckpoint.checkpoint_id.in_(list(checkpoint_ids))
        )
        query = query.where(Study.id.in_(members))
    return [StudyLink(i, n, s, int(v)) for i, n, s, v in session.execute(query)]


@dataclass(frozen=True)
class RecommendationView:
    id: int
    checkpoint_id: int
    checkpoint_label: str
    method: str
    rationale: str
    evidence: dict[str, Any]
    created_at: datetime


def latest_recommendation(session: Session, study_id: int) -> RecommendationView | None:
    """The newest stored recommendation of a study (history stays in the table)."""
    row = session.execute(
        select(Recommendation, TrainingRun.name, Checkpoint.step, Checkpoint.kind)
        .join(Checkpoint, Checkpoint.id == Recommendation.checkpoint_id)
        .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
        .where(Recommendation.study_id == study_id)
        .order_by(Recommendation.created_at.desc(), Recommendation.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    rec, run_name, step, kind = row
    return RecommendationView(
        id=rec.id,
        checkpoint_id=rec.checkpoint_id,
        checkpoint_label=checkpoint_label(run_name, step, kind),
        method=rec.method,
        rationale=rec.rationale,
        evidence=dict(rec.evidence or {}),
        created_at=rec.created_at,
    )
