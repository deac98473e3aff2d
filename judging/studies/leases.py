"""Work that stalls goes back to the pool, so a study always finishes.

A served item with no verdict after the lease (RLHF_LEASE_SECONDS) and an item one rater skipped
RLHF_MAX_SKIPS times are handed to another eligible rater (not on the comparison yet, never
shown any of its texts); with nobody eligible, an expired lease stays where it is and a
skipped-out item closes its comparison with the reason. "Cannot judge" (broken, unsafe) takes an
item out of its rater's queue for good and is the comparison's reason. The handover is one
conditional UPDATE, so a verdict committed meanwhile wins and nothing moves.

Work of raters who left (idle, revoked, excluded) is handed on by `judging.studies.departures`;
such raters never receive handed-back work here either.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from judging.data.models import (
    FLAG_KINDS,
    Assignment,
    Comparison,
    Judgement,
    Prompt,
    Rater,
    Study,
)
from judging.settings import new_token
from judging.studies import assignment as plan
from judging.studies import audit, departures, lookups, queues, rating

MAX_FLAG_REASON_CHARS = 500
OPEN_STATUSES = ("pending", "served", "skipped")
_sides = random.SystemRandom()


def _now() -> datetime:
    return datetime.now(UTC)


def _study_of(session: Session, assignment: Assignment) -> Study:
    study = session.scalar(
        select(Study).join(Comparison).where(Comparison.id == assignment.comparison_id)
    )
    assert study is not None  # FK guarantees it
    return study


def hand_back(
    session: Session,
    assignment: Assignment,
    *,
    action: str,
    reason: str,
    expected: tuple[str, ...],
    keep_if_nobody: bool,
    actor_id: int | None = None,
    idle: timedelta | None = None,
) -> int | None:
    """Release the item to another eligible rater; returns who got it (None: nobody).

    `expected`: statuses it may be in (a verdict committed meanwhile makes it `done` and the
    conditional UPDATE then changes nothing). `keep_if_nobody`: leave it with its rater when
    no one else can take it (an expired lease), rather than closing the comparison with the
    reason (the rater skipped it out). Raters who left (`departures.departed_raters`; idle ones
    only with `idle`) never receive it.
    """
    study = _study_of(session, assignment)
    comparison = session.get(Comparison, assignment.comparison_id)
    assert comparison is not None
    holders = set(
        session.scalars(
            select(Assignment.rater_id).where(Assignment.comparison_id == comparison.id)
        )
    )
    load = Counter(
        dict(
            session.execute(
                select(Assignment.rater_id, func.count())
                .join(Comparison, Comparison.id == Assignment.comparison_id)
                .where(Comparison.study_id == study.id, Assignment.status != "released")
                .group_by(Assignment.rater_id)
            ).all()
        )
    )
    gone = departures.departed_raters(session, study.id, idle=idle)
    target = plan.pick_replacement(
        [r for r in lookups.study_rater_ids(session, study.id) if r not in gone],
        holders,
        load,
        queues.seen_texts(session, study.id),
        queues.shown_texts(session, comparison),
        random.Random(f"{study.seed}:handback:{assignment.id}"),
    )
    if target is None and keep_if_nobody:
        return None
    released = session.execute(
        update(Assignment)
        .where(
            Assignment.id == assignment.id,
            Assignment.rater_id == assignment.rater_id,
            Assignment.status.in_(expected),
        )
        .values(status="released")
        .execution_options(synchronize_session=False)
    )
    if getattr(released, "rowcount", 0) != 1:
        return None
    session.refresh(assignment)
    if target is None:
        note = f"{reason}; no other eligible rater"
        comparison.closed_reason = "; ".join(filter(None, [comparison.closed_reason, note]))
    else:
        try:
            with session.begin_nested():
                _give(session, study, comparison.id, target)
        except IntegrityError:
            # A concurrent hand-back gave this rater the same comparison: one is enough.
            target = None
    audit.record(
        session,
        action,
        study_id=study.id,
        actor_id=actor_id,
        assignment_id=assignment.id,
        reason=reason,
        **{"from": assignment.rater_id, "to": target},
    )
    return target


def _give(session: Session, study: Study, comparison_id: int, rater_id: int) -> None:
    last = session.scalar(
        select(func.max(Assignment.position)).where(
            Assignment.study_id == study.id, Assignment.rater_id == rater_id
        )
    )
    session.add(
        Assignment(
            public_id=new_token(),
            comparison_id=comparison_id,
            study_id=study.id,
            rater_id=rater_id,
            checkpoint_side=plan.draw_sides(1, _sides)[0],
            position=(last if last is not None else -1) + 1,
            status="pending",
        )
    )
    session.flush()


# Built once: building it cost more than running it (the next item asks rating's summary
# query first whether there is anything to release).
_STALE = rating.expired_leases().order_by(Assignment.served_at)


def release_expired(
    session: Session,
    *,
    lease: timedelta,
    now: datetime | None = None,
    idle: timedelta | None = None,
) -> int:
    """Hand served items older than the lease to other raters; returns how many moved."""
    cutoff = (now or _now()) - lease
    stale = session.scalars(_STALE, {"lease_cutoff": cutoff}).all()
    moved = 0
    for assignment in stale:
        minutes = round(lease.total_seconds() / 60)
        target = hand_back(
            session,
            assignment,
            action="lease_expired",
            reason=f"no verdict within {minutes} min of being shown",
            expected=("served",),
            keep_if_nobody=True,
            idle=idle,
        )
        moved += target is not None
    return moved


def skip_item(
    session: Session, *, rater_id: int, public_id: str, reason: str | None, max_skips: int
) -> bool:
    """Skip for now; the `max_skips`-th skip hands the item on. True if it left the queue."""
    assignment = rating.skip(session, rater_id=rater_id, public_id=public_id, reason=reason)
    if assignment.status != "skipped" or assignment.skip_count < max_skips:
        return False
    hand_back(
        session,
        assignment,
        action="skip_released",
        reason=f"skipped {assignment.skip_count} times by one rater"
        + (f" ({assignment.skip_reason})" if assignment.skip_reason else ""),
        expected=("skipped",),
        keep_if_nobody=False,
        actor_id=rater_id,
    )
    return True


def parse_flag(kind: str | None, reason: str | None) -> tuple[str, str]:
    text = (reason or "").strip()
    if kind not in FLAG_KINDS:
        raise rating.InvalidSubmission(f"say what is wrong: one of {', '.join(FLAG_KINDS)}")
    if not text:
        raise rating.InvalidSubmission("give a short reason why this item cannot be judged")
    if len(text) > MAX_FLAG_REASON_CHARS:
        raise rating.InvalidSubmission(
            f"the reason is limited to {MAX_FLAG_REASON_CHARS} characters"
        )
    return kind, text


def flag(session: Session, *, rater_id: int, public_id: str, kind: str, reason: str) -> None:
    """ "Cannot judge": out of this rater's queue for good, listed on the QC page."""
    assignment = rating.own_assignment(session, rater_id, public_id, lock=True)
    if assignment.status not in OPEN_STATUSES:
        raise rating.item_gone(assignment)
    assignment.status, assignment.flag_kind, assignment.flag_reason = "flagged", kind, reason
    session.flush()
    audit.record(
        session,
        "flagged",
        study_id=_study_of(session, assignment).id,
        actor_id=rater_id,
        assignment_id=assignment.id,
        kind=kind,
        reason=reason,
    )


@dataclass(frozen=True)
class FlaggedItem:
    rater: str
    prompt_external_id: str
    kind: str
    reason: str
    at: datetime | None


def flagged_items(session: Session, study_id: int) -> list[FlaggedItem]:
    rows = session.execute(
        select(Assignment, Rater.name, Prompt.external_id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .join(Prompt, Prompt.id == Comparison.prompt_id)
        .join(Rater, Rater.id == Assignment.rater_id)
        .where(Comparison.study_id == study_id, Assignment.status == "flagged")
        .order_by(Assignment.id)
    )
    return [
        FlaggedItem(name, ext, a.flag_kind or "other", a.flag_reason or "", a.served_at)
        for a, name, ext in rows
    ]


@dataclass(frozen=True)
class ShortComparison:
    comparison_id: int
    prompt_external_id: str
    verdicts: int
    reason: str


@dataclass
class Completion:
    """Every comparison of a study: complete, still open, or short with its reason."""

    needed: int
    complete: int = 0
    open: int = 0
    parked: int = 0
    """Comparisons an adaptive study held back (checkpoint out of contention, or decided)."""
    short: list[ShortComparison] = field(default_factory=list)


def completion(session: Session, study: Study) -> Completion:
    verdicts: Counter[int] = Counter()
    open_items: Counter[int] = Counter()
    parked: Counter[int] = Counter()
    flags: dict[int, list[str]] = defaultdict(list)
    rows = session.execute(
        select(Assignment, Judgement.id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .outerjoin(
            Judgement,
            (Judgement.assignment_id == Assignment.id) & Judgement.withdrawn_at.is_(None),
        )
        .where(Comparison.study_id == study.id)
    )
    for a, judgement_id in rows:
        if judgement_id is not None:
            verdicts[a.comparison_id] += 1
        elif a.status in OPEN_STATUSES:
            open_items[a.comparison_id] += 1
        elif a.status == "flagged":
            flags[a.comparison_id].append(f"flagged {a.flag_kind}: {a.flag_reason}")
        elif a.status == "parked":
            parked[a.comparison_id] += 1
    report = Completion(study.raters_per_comparison)
    comparisons = session.execute(
        select(Comparison, Prompt.external_id)
        .join(Prompt, Prompt.id == Comparison.prompt_id)
        .where(Comparison.study_id == study.id)
        .order_by(Comparison.id)
    )
    for c, external_id in comparisons:
        outcome = plan.comparison_outcome(
            study.raters_per_comparison,
            verdicts[c.id],
            open_items[c.id],
            flags[c.id],
            c.auto_choice,
            c.closed_reason,
            parked[c.id],
        )
        if outcome.state == "complete":
            report.complete += 1
        elif outcome.state == "open":
            report.open += 1
        elif outcome.state == "parked":
            report.parked += 1
        else:
            report.short.append(
                ShortComparison(c.id, external_id, verdicts[c.id], outcome.reason or "")
            )
    return report
