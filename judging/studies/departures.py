"""Raters who leave strand no work: their unstarted and skipped items go to eligible raters.

A rater counts as gone from a study when revoked, excluded from its statistics, or idle: not
seen (`Rater.last_seen_at`, bumped by `touch` whenever they ask for an item) for longer than
RLHF_IDLE_RELEASE_SECONDS since they joined the study. Their items that nobody is looking at
(pending and never shown, or skipped) are released and each given to the least-loaded rater
who is not gone, not on the comparison yet and never shown any of its texts: the blindness rules
of every other hand-over. An idle rater may come back, so an item nobody else can take waits
for them; a revoked or excluded rater's item closes its comparison with the reason instead.
Every move is audited (`rater_left`).

When: whenever a rater asks for an item (the moment someone who can take the work is there)
and when an admin opens the QC page; no scheduler needed. The common case, nobody gone or
nothing of theirs left, costs one small query per study of the asking rater. Concurrency: the
hand-over runs under the study-row lock, so a second request waits, re-reads and finds the
items gone; each release is also a conditional UPDATE, so an item served or judged meanwhile
stays where it is.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from judging.data.models import (
    Assignment,
    AuditEntry,
    Comparison,
    Rater,
    RaterExclusion,
    Study,
    StudyRater,
)
from judging.settings import new_token
from judging.studies import assignment as plan
from judging.studies import audit, lookups, queues, transfers

TOUCH_EVERY = timedelta(minutes=1)
"""`touch` writes at most this often per rater: one small UPDATE, not one per request."""

_sides = random.SystemRandom()


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


CHECK_EVERY_S = 300.0
"""Per process and rater, the presence bump and the departure check run at most this often, or
every twentieth of the idle window when that is shorter: both cost three statements on the
rater's hottest request. Checked every 30 s they ran on one request in six under 100 raters,
far more often than a default idle window of a day needs."""
_checked: dict[int, float] = {}


def presence_due(last_checked: float | None, now: float, idle: timedelta) -> bool:
    """Whether a rater's presence check is due (monotonic seconds; None: never checked)."""
    every = min(CHECK_EVERY_S, idle.total_seconds() / 20)
    return last_checked is None or now - last_checked >= every


def check_presence(session: Session, rater_id: int, *, idle: timedelta) -> None:
    """`touch` the rater and hand on the stranded work of raters who left, when due."""
    now = time.monotonic()
    if not presence_due(_checked.get(rater_id), now, idle):
        return
    _checked[rater_id] = now
    touch(session, rater_id)
    release_departed(session, idle=idle, for_rater=rater_id)


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


@dataclass(frozen=True)
class Departure:
    """Why a rater counts as gone from a study, and whether they may come back to their work
    (an idle rater may; a revoked or excluded one will not)."""

    reason: str
    may_return: bool


def _excluded() -> ColumnElement[bool]:
    return exists().where(
        RaterExclusion.study_id == StudyRater.study_id,
        RaterExclusion.rater_id == StudyRater.rater_id,
        RaterExclusion.restored_at.is_(None),
    )


def _span(idle: timedelta) -> str:
    hours = idle.total_seconds() / 3600
    return f"{hours:g} h" if hours >= 1 else f"{round(idle.total_seconds() / 60)} min"


def departed_raters(
    session: Session, study_id: int, *, idle: timedelta | None, now: datetime | None = None
) -> dict[int, Departure]:
    """rater -> why they count as gone from this study: revoked, excluded from its statistics,
    or (with `idle`) not seen for that long, counting from when they joined the study."""
    rows = session.execute(
        select(
            StudyRater.rater_id, Rater.active, _excluded(), Rater.last_seen_at, StudyRater.joined_at
        )
        .join(Rater, Rater.id == StudyRater.rater_id)
        .where(StudyRater.study_id == study_id)
    )
    gone: dict[int, Departure] = {}
    for rater_id, active, excluded, last_seen, joined in rows:
        latest = max(_aware(joined), _aware(last_seen or joined))
        if not active:
            gone[rater_id] = Departure("rater revoked", may_return=False)
        elif excluded:
            gone[rater_id] = Departure("rater excluded from the statistics", may_return=False)
        elif idle is not None and latest < (now or _now()) - idle:
            gone[rater_id] = Departure(f"no activity for over {_span(idle)}", may_return=True)
    return gone


def _unstarted_or_skipped() -> ColumnElement[bool]:
    """Items nobody is looking at: never shown (pending), or skipped to the end of a queue."""
    return or_(
        Assignment.status == "skipped",
        and_(Assignment.status == "pending", Assignment.served_at.is_(None)),
    )


def _stranded_query(study_id: int, raters: Collection[int]) -> Select[Assignment]:
    return (
        select(Assignment)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(
            Comparison.study_id == study_id,
            Assignment.rater_id.in_(list(raters)),
            _unstarted_or_skipped(),
        )
    )


def _studies_of(session: Session, rater_id: int | None) -> list[int]:
    query = select(Study.id).where(Study.status == "running").order_by(Study.id)
    if rater_id is not None:
        query = query.join(StudyRater, StudyRater.study_id == Study.id).where(
            StudyRater.rater_id == rater_id
        )
    return list(session.scalars(query))


_settled: dict[int, tuple[object, ...]] = {}
"""study -> the state in which its last hand-over left only items nobody else can take.

Until a new assignment, a change of members or of who is gone, a new attempt could move nothing
either: skipping it keeps a study whose idle rater holds unplaceable items from re-planning (and
taking the study lock) on every request. Per process; a stale entry only delays, never misplaces.
"""


def _state(session: Session, study: Study, gone: Collection[int]) -> tuple[object, ...]:
    last = session.scalar(
        select(func.max(Assignment.id))
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study.id)
    )
    members = tuple(lookups.study_rater_ids(session, study.id))
    return (study.created_at, last, members, tuple(sorted(gone)))


def release_departed(
    session: Session,
    *,
    idle: timedelta,
    now: datetime | None = None,
    for_rater: int | None = None,
    study_ids: Collection[int] | None = None,
) -> int:
    """Hand the stranded items of raters who left to eligible raters; returns how many moved.

    Checks the running studies `for_rater` belongs to (all running ones without it), or
    `study_ids`.
    """
    ids = list(study_ids) if study_ids is not None else _studies_of(session, for_rater)
    moved = 0
    for study_id in ids:
        gone = departed_raters(session, study_id, idle=idle, now=now)
        if not gone:
            continue
        if session.scalar(_stranded_query(study_id, gone).limit(1)) is None:
            continue
        study = session.get(Study, study_id)
        assert study is not None
        if _settled.get(study_id) == _state(session, study, gone):
            continue
        moved += _release_study(session, study, idle=idle, now=now)
    return moved


@dataclass
class _Pool:
    """Who may take what in one study, kept current as moves are planned."""

    receivers: list[int]
    holders: dict[int, set[int]]
    load: Counter[int]
    seen: dict[int, set[str]]
    keys: dict[int, frozenset[str]]


def _pool(session: Session, study: Study, gone: Collection[int]) -> _Pool:
    holders: dict[int, set[int]] = defaultdict(set)
    load: Counter[int] = Counter()
    seen: dict[int, set[str]] = defaultdict(set)
    keys = queues.comparison_keys(session, study.id)
    rows = session.execute(
        select(Assignment.comparison_id, Assignment.rater_id, Assignment.status)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study.id)
    )
    for comparison_id, rater_id, status in rows:
        holders[comparison_id].add(rater_id)  # released rows too: one row per rater and item
        load[rater_id] += status != "released"
        seen[rater_id] |= keys[comparison_id]
    receivers = [r for r in lookups.study_rater_ids(session, study.id) if r not in gone]
    return _Pool(receivers, holders, load, seen, keys)


@dataclass(frozen=True)
class _Move:
    item: Assignment
    target: int | None
    """None: nobody can take it and its rater will not be back, so it closes with `why`."""
    why: Departure


def _plan(
    pool: _Pool, items: Sequence[Assignment], gone: dict[int, Departure], rng: random.Random
) -> list[_Move]:
    moves = []
    for item in items:
        texts = pool.keys[item.comparison_id]
        target = plan.pick_replacement(
            pool.receivers, pool.holders[item.comparison_id], pool.load, pool.seen, texts, rng
        )
        why = gone[item.rater_id]
        if target is None and why.may_return:
            continue  # nobody else can take it: it waits for its rater
        if target is not None:
            pool.holders[item.comparison_id].add(target)
            pool.load[target] += 1
            pool.seen[target] |= texts
        moves.append(_Move(item, target, why))
    return moves


def _release_study(session: Session, study: Study, *, idle: timedelta, now: datetime | None) -> int:
    # Two raters asking at once: the second waits here, then re-reads and finds nothing left.
    transfers.lock_study(session, study)
    gone = departed_raters(session, study.id, idle=idle, now=now)
    items = list(
        session.scalars(
            _stranded_query(study.id, gone)
            .order_by(Assignment.id)
            .execution_options(populate_existing=True)
        )
    )
    if not items:
        return 0
    rng = random.Random(f"{study.seed}:departed:{items[0].id}")
    made = _apply(session, study, _plan(_pool(session, study, gone), items, gone, rng))
    for rater in {m.target for m in made if m.target is not None}:
        queues.requeue(session, study, rater, rng)
    if len(made) < len(items):
        _settled[study.id] = _state(session, study, gone)
    else:
        _settled.pop(study.id, None)
    return sum(m.target is not None for m in made)


def _apply(session: Session, study: Study, moves: list[_Move]) -> list[_Move]:
    """Carry the moves out, all at once; item by item if an expired lease (which does not
    take the study lock) gave one of the targets the same comparison meanwhile."""
    if not moves:
        return []
    try:
        with session.begin_nested():
            return _apply_all(session, study, moves)
    except IntegrityError:
        return [m for m in moves if _apply_one(session, study, m)]


def _release(session: Session, ids: list[int]) -> set[int]:
    """Mark released those still stranded (not served or judged since); returns their ids."""
    released = session.scalars(
        update(Assignment)
        .where(Assignment.id.in_(ids), _unstarted_or_skipped())
        .values(status="released")
        .returning(Assignment.id)
        .execution_options(synchronize_session=False)
    )
    return set(released)


def _apply_all(session: Session, study: Study, moves: list[_Move]) -> list[_Move]:
    released = _release(session, [m.item.id for m in moves])
    made = [m for m in moves if m.item.id in released]
    next_position = _next_positions(session, study, {m.target for m in made} - {None})
    for move in made:
        if move.target is None:
            _close(session, move)
            continue
        session.add(_new_assignment(move, next_position[move.target]))
        next_position[move.target] += 1
    session.add_all(_audit(study, m) for m in made)
    session.flush()
    return made


def _apply_one(session: Session, study: Study, move: _Move) -> bool:
    try:
        with session.begin_nested():
            if not _release(session, [move.item.id]):
                return False
            if move.target is None:
                _close(session, move)
            else:
                position = _next_positions(session, study, {move.target})[move.target]
                session.add(_new_assignment(move, position))
            session.add(_audit(study, move))
            session.flush()
    except IntegrityError:
        return False  # the target got this comparison meanwhile: it waits for the next check
    return True


def _next_positions(session: Session, study: Study, raters: set[int | None]) -> Counter[int]:
    """rater -> the position after their last item (requeue orders the new ones afterwards)."""
    rows = session.execute(
        select(Assignment.rater_id, func.max(Assignment.position))
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study.id, Assignment.rater_id.in_(list(raters - {None})))
        .group_by(Assignment.rater_id)
    )
    out: Counter[int] = Counter()
    for rater_id, last in rows:
        out[rater_id] = last + 1
    return out


def _new_assignment(move: _Move, position: int) -> Assignment:
    assert move.target is not None
    return Assignment(
        public_id=new_token(),
        comparison_id=move.item.comparison_id,
        study_id=move.item.study_id,
        rater_id=move.target,
        checkpoint_side=plan.draw_sides(1, _sides)[0],
        position=position,
        status="pending",
    )


def _close(session: Session, move: _Move) -> None:
    comparison = session.get(Comparison, move.item.comparison_id)
    assert comparison is not None
    note = f"{move.why.reason}; no other eligible rater"
    comparison.closed_reason = "; ".join(filter(None, [comparison.closed_reason, note]))


def _audit(study: Study, move: _Move) -> AuditEntry:
    return audit.entry(
        "rater_left",
        study_id=study.id,
        assignment_id=move.item.id,
        reason=move.why.reason,
        **{"from": move.item.rater_id, "to": move.target},
    )
