"""Rater guidelines of a study: written by the admin in markdown, shown to each rater once before
their first item of the study, and on demand afterwards.

The view carries the study id (already implied by the rater's queue) and the text; nothing about
checkpoints. Editing the guidelines shows them again to everyone on their next visit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from judging.data.models import Assignment, Comparison, Study, StudyRater
from judging.errors import ConflictError, NotFoundError

MAX_GUIDELINES_CHARS = 20_000


@dataclass(frozen=True)
class GuidelinesView:
    study_id: int
    text: str
    first_visit: bool
    """True until the rater has confirmed reading them (then only the link is shown)."""


def clean(text: str | None) -> str | None:
    """Stored form of what the admin typed: stripped, None when empty; refuses overlong text."""
    value = (text or "").strip()
    if len(value) > MAX_GUIDELINES_CHARS:
        raise ConflictError(f"guidelines are limited to {MAX_GUIDELINES_CHARS} characters")
    return value or None


def set_guidelines(session: Session, study: Study, text: str | None) -> None:
    """Replace the study's guidelines; a changed text is shown again to every rater."""
    value = clean(text)
    if value == study.guidelines:
        return
    study.guidelines = value
    session.execute(
        update(StudyRater).where(StudyRater.study_id == study.id).values(guidelines_seen_at=None)
    )
    session.flush()


def _is_member(session: Session, rater_id: int, study_id: int) -> bool:
    member = select(StudyRater.id).where(
        StudyRater.study_id == study_id, StudyRater.rater_id == rater_id
    )
    worked = (
        select(Assignment.id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study_id, Assignment.rater_id == rater_id)
    )
    return bool(session.scalar(select(exists(member) | exists(worked))))


def for_study(session: Session, rater_id: int, study_id: int) -> GuidelinesView:
    """The guidelines page of a study, for its raters only: 404 for a study that is not theirs,
    exactly as for one that does not exist (no rater learns which study ids exist)."""
    study = session.get(Study, study_id)
    if study is None or not _is_member(session, rater_id, study_id):
        raise NotFoundError("no such study")
    return GuidelinesView(study_id, study.guidelines or "", first_visit=False)


def mark_seen(session: Session, rater_id: int, study_id: int, now: datetime | None = None) -> None:
    """Record that the rater read the guidelines (idempotent: the first time stays)."""
    for_study(session, rater_id, study_id)  # the same permission checks
    session.execute(
        update(StudyRater)
        .where(
            StudyRater.study_id == study_id,
            StudyRater.rater_id == rater_id,
            StudyRater.guidelines_seen_at.is_(None),
        )
        .values(guidelines_seen_at=now or datetime.now(UTC))
    )
    session.flush()
