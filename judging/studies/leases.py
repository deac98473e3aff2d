"""Work that stalls goes back to the pool, so a study always finishes.

A served item with no verdict after the lease (RLHF_LEASE_SECONDS) and an item one rater skipped
RLHF_MAX_SKIPS times are handed to another eligible rater (not on the comparison yet, never
shown any of its texts); with nobody eligible, an expired lease stays where it is and a
skipped-out item closes its comparison with the reason. "Cannot judge" (broken, unsafe) takes an
item out of its rater's queue for good and is the comparison's reason. The handover is one
conditional UPDATE, so a verdict committed meanwhile wins and nothing moves.

A rater who leaves strands no work either (`release_departed`): the unstarted and skipped items
of a rater who is revoked, excluded from the study's statistics, or idle (not seen for
RLHF_IDLE_RELEASE_SECONDS; activity is `Rater.last_seen_at`, bumped by `touch` whenever they
ask for an item, or the time they joined the study) go to eligible raters under the same
rules. It runs when another rater asks for an item (the moment someone who can take the work
is there) and when an admin opens the QC page; the study-row lock makes concurrent requests
hand each item on once. A departed rater never receives handed-back work.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from judging.data.models import (
    FLAG_KINDS,
    Assignment,
    Comparison,
    Judgement,
    Prompt,
    Rater,
    RaterExclusion,
    Study,
    StudyRater,
)
from judging.settings import new_token
from judging.studies import assignment as plan
from judging.studies import audit, rating
from judging.studies import service as studies

MAX_FLAG_REASON_CHARS = 500
OPEN_STATUSES = ("pending", "served", "skipped")
_sides = random.SystemRandom()


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
    reason (the rater skipped it out). Raters who left (see `departed_raters`; idle ones only
    with `idle`) never receive it.
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
    gone = departed_raters(session, study.id, idle=idle)
    target = plan.pick_replacement(
        [r for r in studies.study_rater_ids(session, study.id) if r not in gone],
        holders,
        load,
        studies._seen(session, study.id),
        studies._shown(session, comparison),
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
        select(func.max(Assignment.position))
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study.id, Assignment.rater_id == rater_id)
    )
    session.add(
        Assignment(
            public_id=new_token(),
            comparison_id=comparison_id,
            rater_id=rater_id,
            checkpoint_side=plan.draw_sides(1, _sides)[0],
            position=(last if last is not None else -1) + 1,
            status="pending",
        )
    )
    session.flush()


def release_expired(
    session: Session,
    *,
    lease: timedelta,
    now: datetime | None = None,
    idle: timedelta | None = None,
) -> int:
    """Hand served items older than the lease to other raters; returns how many moved."""
    cutoff = (now or _now()) - lease
    stale = session.scalars(
        select(Assignment)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .join(Study, Study.id == Comparison.study_id)
        .where(
            Study.status == "running",
            Assignment.status == "served",
            Assignment.served_at < cutoff,
        )
        .order_by(Assignment.served_at)
    ).all()
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


TOUCH_EVERY = timedelta(minutes=1)
"""`touch` writes at most this often per rater: one small UPDATE, not one per request."""


def touch(session: Session, rater_id: int, now: datetime | None = None) -> None:
    """Record that the rater is here (they asked for an item or acted on one)."""
    now = now or _now()
    session.execute(
        update(Rater)
        .where(
            Rater.id == rater_id,
            or_(Rater.last_seen_at.is_(None), Rater.last_seen_at < now - TOUCH_EVERY),
        )
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )


def _excluded() -> ColumnElement[bool]:
    return exists().where(
        RaterExclusion.study_id == StudyRater.study_id,
        RaterExclusion.rater_id == StudyRater.rater_id,
        RaterExclusion.restored_at.is_(None),
    )


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:g} h" if hours >= 1 else f"{round(span.total_seconds() / 60)} min"


@dataclass(frozen=True)
class Departure:
    """Why a rater counts as gone from a study, and whether they may come back to their work
    (an idle rater may; a revoked or excluded one will not)."""

    reason: str
    may_return: bool


def departed_raters(
    session: Session, study_id: int, *, idle: timedelta | None, now: datetime | None = None
) -> dict[int, Departure]:
    """rater -> why they count as gone from this study: revoked, excluded from its statistics,
    or (with `idle`) not seen for that long, counting from when they joined the study."""
    cutoff = (now or _now()) - idle if idle is not None else None
    rows = session.execute(
        select(
            StudyRater.rater_id,
            Rater.active,
            _excluded(),
            Rater.last_seen_at,
            StudyRater.joined_at,
        )
        .join(Rater, Rater.id == StudyRater.rater_id)
        .where(StudyRater.study_id == study_id)
    )
    gone: dict[int, Departure] = {}
    for rater_id, active, excluded, last_seen, joined in rows:
        latest = max(_aware(joined), _aware(last_seen) if last_seen else _aware(joined))
        if not active:
            gone[rater_id] = Departure("rater revoked", may_return=False)
        elif excluded:
            gone[rater_id] = Departure("rater excluded from the statistics", may_return=False)
        elif cutoff is not None and idle is not None and latest < cutoff:
            gone[rater_id] = Departure(f"no activity for over {_hours(idle)}", may_return=True)
    return gone


def _stranded(session: Session, study_id: int, raters: Collection[int]) -> list[Assignment]:
    """Items of these raters that nobody is looking at: never shown (pending), or skipped."""
    return list(
        session.scalars(
            select(Assignment)
            .join(Comparison, Comparison.id == Assignment.comparison_id)
            .where(
                Comparison.study_id == study_id,
                Assignment.rater_id.in_(list(raters)),
                _unstarted_or_skipped(),
            )
            .order_by(Assignment.id)  # one order for every request: no lock cycles
            .execution_options(populate_existing=True)
        )
    )


def _unstarted_or_skipped() -> ColumnElement[bool]:
    return or_(
        Assignment.status == "skipped",
        and_(Assignment.status == "pending", Assignment.served_at.is_(None)),
    )


def _studies_of(session: Session, rater_id: int | None) -> list[int]:
    query = select(Study.id).where(Study.status == "running").order_by(Study.id)
    if rater_id is not None:
        query = query.join(StudyRater, StudyRater.study_id == Study.id).where(
            StudyRater.rater_id == rater_id
        )
    return list(session.scalars(query))


def release_departed(
    session: Session,
    *,
    idle: timedelta,
    now: datetime | None = None,
    for_rater: int | None = None,
    study_ids: Collection[int] | None = None,
) -> int:
    """Hand the stranded items of raters who left to eligible raters; returns how many moved.

    Checks the running studies `for_rater` belongs to (all running ones without it, or
    `study_ids`). The common case (nobody gone, or nothing of theirs left) costs one small query
    per study; only a study with stranded items is locked and planned.
    """
    ids = list(study_ids) if study_ids is not None else _studies_of(session, for_rater)
    moved = 0
    for study_id in ids:
        gone = departed_raters(session, study_id, idle=idle, now=now)
        if gone and _has_stranded(session, study_id, gone):
            moved += _release_study(session, study_id, idle=idle, now=now)
    return moved


def _has_stranded(session: Session, study_id: int, raters: Collection[int]) -> bool:
    found = session.scalar(
        select(Assignment.id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(
            Comparison.study_id == study_id,
            Assignment.rater_id.in_(list(raters)),
            _unstarted_or_skipped(),
        )
        .limit(1)
    )
    return found is not None


@dataclass
class _Pool:
    """Who may take what in one study, kept current as items are handed on."""

    receivers: list[int]
    holders: dict[int, set[int]]
    load: Counter[int]
    seen: dict[int, set[str]]


def _pool(session: Session, study: Study, gone: Collection[int]) -> _Pool:
    holders: dict[int, set[int]] = defaultdict(set)
    load: Counter[int] = Counter()
    rows = session.execute(
        select(Assignment.comparison_id, Assignment.rater_id, Assignment.status)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study.id)
    )
    for comparison_id, rater_id, status in rows:
        holders[comparison_id].add(rater_id)  # released rows too: one row per rater and item
        load[rater_id] += status != "released"
    receivers = [r for r in studies.study_rater_ids(session, study.id) if r not in gone]
    return _Pool(receivers, holders, load, studies._seen(session, study.id))


def _release_study(
    session: Session, study_id: int, *, idle: timedelta, now: datetime | None
) -> int:
    study = session.get(Study, study_id)
    assert study is not None
    # Two raters asking at once: the second waits here, then re-reads and finds nothing left.
    studies.lock_study(session, study)
    gone = departed_raters(session, study_id, idle=idle, now=now)
    items = _stranded(session, study_id, gone)
    if not items:
        return 0
    pool = _pool(session, study, gone)
    rng = random.Random(f"{study.seed}:departed:{items[0].id}")
    moved = 0
    receivers: set[int] = set()
    for item in items:
        target = _hand_on(session, study, item, pool, gone[item.rater_id], rng)
        if target is not None:
            moved += 1
            receivers.add(target)
    for rater in receivers:
        studies.requeue(session, study, rater, rng)
    return moved


def _hand_on(
    session: Session,
    study: Study,
    item: Assignment,
    pool: _Pool,
    why: Departure,
    rng: random.Random,
) -> int | None:
    """Move one stranded item; None if it stayed (idle owner, nobody eligible) or closed."""
    comparison = session.get(Comparison, item.comparison_id)
    assert comparison is not None
    texts = studies._shown(session, comparison)
    target = plan.pick_replacement(
        pool.receivers, pool.holders[comparison.id], pool.load, pool.seen, texts, rng
    )
    if target is None and why.may_return:
        return None  # nobody else can take it: it waits for its rater
    try:
        with session.begin_nested():
            released = session.execute(
                update(Assignment)
                .where(Assignment.id == item.id, Assignment.rater_id == item.rater_id)
                .where(_unstarted_or_skipped())
                .values(status="released")
                .execution_options(synchronize_session=False)
            )
            if getattr(released, "rowcount", 0) != 1:
                return None  # served or judged since it was read: not stranded any more
            if target is not None:
                _give(session, study, comparison.id, target)
    except IntegrityError:
        # An expired lease (which does not take the study lock) gave the target this very
        # comparison meanwhile: leave the item where it was for the next check.
        return None
    if target is None:
        note = f"{why.reason}; no other eligible rater"
        comparison.closed_reason = "; ".join(filter(None, [comparison.closed_reason, note]))
    else:
        pool.holders[comparison.id].add(target)
        pool.load[target] += 1
        pool.load[item.rater_id] -= 1
        pool.seen.setdefault(target, set()).update(texts)
    audit.record(
        session,
        "rater_left",
        study_id=study.id,
        assignment_id=item.id,
        reason=why.reason,
        **{"from": item.rater_id, "to": target},
    )
    return target


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
    short: list[ShortComparison] = field(default_factory=list)


def completion(session: Session, study: Study) -> Completion:
    verdicts: Counter[int] = Counter()
    open_items: Counter[int] = Counter()
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
        )
        if outcome.state == "complete":
            report.complete += 1
        elif outcome.state == "open":
            report.open += 1
        else:
            report.short.append(
                ShortComparison(c.id, external_id, verdicts[c.id], outcome.reason or "")
            )
    return report
