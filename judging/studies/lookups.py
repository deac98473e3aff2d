"""A study, its checkpoints and its raters as stored; the study's seeded random streams."""

from __future__ import annotations

import random
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data.models import (
    Checkpoint,
    Rater,
    Study,
    StudyCheckpoint,
    StudyRater,
)
from judging.errors import NotFoundError


def study_rng(study: Study, purpose: str) -> random.Random:
    return random.Random(f"{study.seed}:{purpose}")


def get_study(session: Session, study_id: int) -> Study:
    study = session.get(Study, study_id)
    if study is None:
        raise NotFoundError(f"study {study_id} does not exist")
    return study


def list_studies(session: Session) -> list[Study]:
    return list(session.scalars(select(Study).order_by(Study.created_at.desc(), Study.id.desc())))


def study_checkpoint_ids(session: Session, study_id: int) -> list[int]:
    rows = session.scalars(
        select(StudyCheckpoint.checkpoint_id)
        .where(StudyCheckpoint.study_id == study_id)
        .order_by(StudyCheckpoint.id)
    )
    return list(rows)


def study_rater_ids(session: Session, study_id: int) -> list[int]:
    rows = session.scalars(
        select(StudyRater.rater_id).where(StudyRater.study_id == study_id).order_by(StudyRater.id)
    )
    return list(rows)


def get_checkpoints(session: Session, ids: Sequence[int]) -> list[Checkpoint]:
    found = {c.id: c for c in session.scalars(select(Checkpoint).where(Checkpoint.id.in_(ids)))}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFoundError(f"checkpoint(s) {', '.join(map(str, missing))} do not exist")
    return [found[i] for i in ids]


def check_raters(session: Session, ids: Sequence[int]) -> None:
    found = set(session.scalars(select(Rater.id).where(Rater.id.in_(ids))))
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFoundError(f"rater(s) {', '.join(map(str, missing))} do not exist")
