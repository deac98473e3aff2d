"""Admin moves of assignments between raters: rebalancing after a rater joins, and handing a
leaving rater's unfinished work to the others."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from judging.data.models import (
    Assignment,
    Comparison,
    Study,
    StudyRater,
)
from judging.errors import NotFoundError
from judging.settings import new_token
from judging.studies import assignment as plan
from judging.studies import audit
from judging.studies.lookups import study_rater_ids, study_rng
from judging.studies.queues import is_started, requeue, seen_texts, shown_texts, study_assignments


def _taken(rows: list[tuple[Assignment, int]]) -> dict[int, set[int]]:
    taken: dict[int, set[int]] = defaultdict(set)
    for a, _ in rows:
        taken[a.comparison_id].add(a.rater_id)
    return taken


def lock_study(session: Session, study: Study) -> None:
    """Serialise admin moves on one study (SELECT ... FOR UPDATE on its row).

    Raters never take this lock: a verdict races a move only on the assignment row itself, and
    `_apply_moves` settles that with a conditional UPDATE.
    """
    session.execute(select(Study.id).where(Study.id == study.id).with_for_update())


def _blocked(
    session: Session, study_id: int, rows: list[tuple[Assignment, int]]
) -> dict[int, set[int]]:
    """comparison -> raters who may not take it: already on it, or shown one of its texts."""
    blocked = _taken(rows)
    seen = seen_texts(session, study_id)
    for comparison_id in list(blocked):
        comparison = session.get(Comparison, comparison_id)
        assert comparison is not None
        texts = shown_texts(session, comparison)
        blocked[comparison_id] |= {r for r, keys in seen.items() if keys & texts}
    return blocked


def _live_rows(session: Session, study_id: int) -> list[tuple[Assignment, int]]:
    """The study's assignments, re-read after the lock; handed-back ones do not count."""
    session.expire_all()
    return [(a, p) for a, p in study_assignments(session, study_id) if a.status != "released"]


def rebalance(session: Session, study: Study, *, actor_id: int | None = None) -> int:
    """Move unstarted assignments until rater loads differ by at most one."""
    lock_study(session, study)
    rows = _live_rows(session, study.id)
    movable = [
        plan.Movable(a.id, a.comparison_id, a.rater_id) for a, _ in rows if not is_started(a)
    ]
    load = Counter(a.rater_id for a, _ in rows)
    raters = study_rater_ids(session, study.id)
    rng = study_rng(study, f"rebalance:{len(rows)}:{len(raters)}")
    moves = plan.plan_rebalance(movable, _blocked(session, study.id, rows), load, raters, rng)
    return _apply_moves(
        session, study, rows, moves, rng, action="rebalance", actor_id=actor_id, unstarted=True
    )


HANDOVER_STATUSES = ("pending", "served", "skipped", "parked")
"""Unfinished work a leaving rater hands on; a parked item stays parked with its new rater."""


def _apply_moves(
    session: Session,
    study: Study,
    rows: list[tuple[Assignment, int]],
    moves: dict[int, int],
    rng: random.Random,
    *,
    action: str,
    actor_id: int | None,
    unstarted: bool,
) -> int:
    """Move each assignment only if it is still as planned (same rater, not judged meanwhile).

    One conditional UPDATE per item: a verdict committed since the plan was read leaves the
    row `done` (or holds its lock until it is), so the UPDATE matches nothing and the verdict
    stays where it was given. Returns how many really moved.
    """
    by_id = {a.id: a for a, _ in rows}
    touched: set[int] = set()
    moved = 0
    for assignment_id, target in moves.items():
        a = by_id[assignment_id]
        source = a.rater_id
        conditions = [
            Assignment.id == a.id,
            Assignment.rater_id == source,
            Assignment.status.in_(("pending", "parked") if unstarted else HANDOVER_STATUSES),
        ]
        if unstarted:
            conditions.append(Assignment.served_at.is_(None))
        result = session.execute(
            update(Assignment)
            .where(*conditions)
            # A new public id so the previous holder's open page cannot submit for it.
            .values(
                rater_id=target,
                public_id=new_token(),
                status=case((Assignment.status == "parked", "parked"), else_="pending"),
                served_at=None,
                skip_reason=None,
                skip_count=0,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            continue
        moved += 1
        touched.update({source, target})
        audit.record(
            session,
            action,
            study_id=study.id,
            actor_id=actor_id,
            assignment_id=a.id,
            **{"from": source, "to": target},
        )
    session.expire_all()
    for rater in touched:
        requeue(session, study, rater, rng)
    return moved


def reassign_rater_work(
    session: Session, study: Study, rater_id: int, *, actor_id: int | None = None
) -> tuple[int, int]:
    """Hand a rater's unfinished items to the others and drop them from the study.

    Returns (moved, stuck): stuck items had no eligible rater (everyone else already on them,
    or already shown one of its texts), or were judged while the move ran.
    """
    lock_study(session, study)
    raters = study_rater_ids(session, study.id)
    if rater_id not in raters:
        raise NotFoundError("that rater is not in this study")
    rows = _live_rows(session, study.id)
    movable = [
        plan.Movable(a.id, a.comparison_id, a.rater_id)
        for a, _ in rows
        if a.rater_id == rater_id and a.status in HANDOVER_STATUSES
    ]
    receivers = [r for r in raters if r != rater_id]
    rng = study_rng(study, f"handover:{rater_id}:{len(rows)}")
    load = Counter(a.rater_id for a, _ in rows)
    moves, _ = plan.plan_handover(movable, _blocked(session, study.id, rows), load, receivers, rng)
    moved = _apply_moves(
        session, study, rows, moves, rng, action="reassign", actor_id=actor_id, unstarted=False
    )
    left = session.scalar(
        select(func.count())
        .select_from(Assignment)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(
            Comparison.study_id == study.id,
            Assignment.rater_id == rater_id,
            Assignment.status.in_(HANDOVER_STATUSES),
        )
    )
    stuck_count = left or 0
    if not stuck_count:
        link = session.scalar(
            select(StudyRater).where(
                StudyRater.study_id == study.id, StudyRater.rater_id == rater_id
            )
        )
        if link is not None:
            session.delete(link)
            session.flush()
    return moved, stuck_count
