"""Which verdicts a study's statistics count: one rule for QC, the recommendation and dashboards.

A verdict counts when it is live (not withdrawn by an undo), its assignment was not handed back
to the pool, and its rater is not excluded from the study's statistics (an active row of
`rater_exclusions`). A comparison whose two texts are identical is never sent to raters: it
counts as `auto_choice` (a tie) once per rater slot (`raters_per_comparison`), so such a prompt
weighs in a checkpoint's win rate as much as a judged one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from judging.data.models import (
    Assignment,
    Comparison,
    Generation,
    Judgement,
    RaterExclusion,
    Study,
)
from judging.stats.agreement import winner
from judging.stats.winrate import vote_score

AUTO_SIDE = "left"
"""The side an auto-decided comparison is read with (irrelevant for a tie)."""


def excluded_rater() -> ColumnElement[bool]:
    """True when `Assignment.rater_id` is excluded from `Comparison.study_id`'s statistics."""
    return exists().where(
        RaterExclusion.study_id == Comparison.study_id,
        RaterExclusion.rater_id == Assignment.rater_id,
        RaterExclusion.restored_at.is_(None),
    )


def live_verdict() -> ColumnElement[bool]:
    """Filter for a query joining Judgement and its Assignment: not withdrawn, not handed back.

    A live verdict of an excluded rater is still on record (exports can include it, marked)."""
    return and_(Judgement.withdrawn_at.is_(None), Assignment.status != "released")


def counted_verdict() -> ColumnElement[bool]:
    """Filter for a query joining Judgement, its Assignment and its Comparison."""
    return and_(live_verdict(), ~excluded_rater())


def auto_score(auto_choice: str) -> float:
    """The checkpoint's score for an auto-decided comparison (0.5 for a tie)."""
    return vote_score(winner(auto_choice, AUTO_SIDE))


@dataclass(frozen=True)
class AutoTie:
    """An auto-decided normal comparison and how many votes it counts as."""

    study_id: int
    comparison_id: int
    checkpoint_id: int
    prompt_id: int
    choice: str
    copies: int
    """The study's raters per comparison."""
    candidate_tokens: int
    reference_tokens: int | None
    candidate_chars: int
    reference_chars: int | None

    @property
    def score(self) -> float:
        return auto_score(self.choice)


def auto_ties(session: Session, study_ids: Sequence[int] | None = None) -> list[AutoTie]:
    """Auto-decided normal comparisons of these studies (or of all), by comparison id."""
    candidate, reference = aliased(Generation), aliased(Generation)
    query = (
        select(
            Comparison.study_id,
            Comparison.id,
            Comparison.checkpoint_id,
            Comparison.prompt_id,
            Comparison.auto_choice,
            Study.raters_per_comparison,
            candidate.token_count,
            reference.token_count,
            func.length(candidate.text),
            func.length(reference.text),
        )
        .join(Study, Study.id == Comparison.study_id)
        .join(candidate, candidate.id == Comparison.candidate_generation_id)
        .outerjoin(reference, reference.id == Comparison.reference_generation_id)
        .where(Comparison.auto_choice.is_not(None), Comparison.kind == "normal")
        .order_by(Comparison.id)
    )
    if study_ids is not None:
        query = query.where(Comparison.study_id.in_(list(study_ids)))
    return [
        AutoTie(s, c, k, p, str(choice), int(n), int(ct), _int(rt), int(cc), _int(rc))
        for s, c, k, p, choice, n, ct, rt, cc, rc in session.execute(query)
    ]


def _int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
