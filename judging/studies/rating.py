"""A rater's queue: the next item, recording a verdict (idempotently), skip and undo.

Blindness lives here: the item view carries only the opaque public id and the two texts already
placed on their sides; no generation, checkpoint or run identity leaves this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import BindParameter, Select, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.dml import ReturningInsert

from judging.data.db import core_connection
from judging.data.models import (
    CHOICES,
    QUEUED_STATUSES,
    Assignment,
    Comparison,
    Generation,
    Judgement,
    Prompt,
    Study,
    StudyRater,
)
from judging.errors import ConflictError, LabError, NotFoundError
from judging.settings import new_token
from judging.studies import allocation, audit
from judging.studies.guidelines import GuidelinesView

MAX_RATIONALE_CHARS = 2000
MAX_SKIP_REASON_CHARS = 500
MAX_TIME_MS = 24 * 3600 * 1000
DEFAULT_UNDO_WINDOW = timedelta(minutes=2)


class InvalidSubmission(LabError):
    """A form value is out of range; the message says which and why (HTTP 400)."""


@dataclass(frozen=True)
class ItemView:
    public_id: str
    prompt: str
    left: str
    right: str
    idempotency_key: str
    skipped: bool


@dataclass(frozen=True)
class QueueState:
    done: int
    total: int
    item: ItemView | None
    can_undo: bool
    undo_item: str | None = None
    """Public id of the item whose verdict an undo withdraws (the form names it)."""
    guidelines: GuidelinesView | None = None
    """The guidelines of the item's study, when it has any."""


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _open_queue(rater_id: int | BindParameter[int]) -> Select[Assignment]:
    """The rater's assignments in running studies (the study is on the row: no comparison read)."""
    return (
        select(Assignment)
        .join(Study, Study.id == Assignment.study_id)
        .where(Assignment.rater_id == rater_id, Study.status == "running")
    )


QUEUED = QUEUED_STATUSES
NOT_IN_QUEUE = ("released", "parked")
"""Not the rater's work now: handed to others, or held back by adaptive allocation."""
SUBMITTABLE = (*QUEUED_STATUSES, "parked")
"""Statuses that take a verdict: a parked item may still be on its rater's screen, and a
verdict given there is stored and counted (adaptive allocation parks, it never discards)."""


def progress(session: Session, rater_id: int) -> tuple[int, int]:
    """(done, total) over the rater's running studies; items handed to others do not count."""
    rows = session.execute(
        _open_queue(rater_id)
        .with_only_columns(Assignment.status, func.count())
        .group_by(Assignment.status)
    )
    counts = dict(rows.all())
    for gone in NOT_IN_QUEUE:
        counts.pop(gone, None)
    return counts.get("done", 0) + counts.get("flagged", 0), sum(counts.values())


def next_assignment(session: Session, rater_id: int) -> Assignment | None:
    """First unfinished item: lowest study, then queue position (skips were moved to the end)."""
    return session.scalar(
        _open_queue(rater_id)
        .where(Assignment.status.in_(QUEUED))
        .order_by(Assignment.study_id, Assignment.position, Assignment.id)
        .limit(1)
    )


def comparison_texts(session: Session, comparison: Comparison) -> tuple[str, str]:
    """(checkpoint text, reference text); attention checks use the degraded copy as reference."""
    candidate = session.get(Generation, comparison.candidate_generation_id)
    assert candidate is not None  # FK guarantees it
    if comparison.kind == "attention":
        return candidate.text, comparison.degraded_text or ""
    reference = session.get(Generation, comparison.reference_generation_id)
    assert reference is not None
    return candidate.text, reference.text


# The hot statements are built once (bind parameters, aliases): building them per request cost
# more CPU than their execution.
_RATER: BindParameter[int] = bindparam("rater_id")
_ITEM_ID: BindParameter[int] = bindparam("assignment_id")


def _item_query() -> Select[*tuple[Any, ...]]:
    candidate, reference = aliased(Generation), aliased(Generation)
    return (
        select(
            Assignment.public_id,
            Assignment.checkpoint_side,
            Assignment.status,
            Comparison.kind,
            Comparison.degraded_text,
            candidate.text,
            reference.text,
            Prompt.text,
            Study.id,
            Study.guidelines,
            StudyRater.id,
            StudyRater.guidelines_seen_at,
        )
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .join(Study, Study.id == Comparison.study_id)
        .join(Prompt, Prompt.id == Comparison.prompt_id)
        .join(candidate, candidate.id == Comparison.candidate_generation_id)
        .outerjoin(reference, reference.id == Comparison.reference_generation_id)
        .outerjoin(StudyRater, (StudyRater.study_id == Study.id) & (StudyRater.rater_id == _RATER))
        .where(Assignment.id == _ITEM_ID)
    )


_ITEM = _item_query()


def _item(
    session: Session, assignment_id: int, rater_id: int
) -> tuple[ItemView, GuidelinesView | None]:
    """The blind view of one item and its study's guidelines, in one query."""
    row = (
        core_connection(session)
        .execute(_ITEM, {"assignment_id": assignment_id, "rater_id": rater_id})
        .one()
    )
    public_id, side, status, kind, degraded, mine, theirs, prompt = row[:8]
    study_id, guidelines, link_id, seen_at = row[8:]
    if kind == "attention":
        theirs = degraded or ""
    left, right = (mine, theirs or "") if side == "left" else (theirs or "", mine)
    view = ItemView(public_id, prompt, left, right, new_token(), skipped=status == "skipped")
    guide = (
        GuidelinesView(study_id, guidelines, first_visit=link_id is not None and seen_at is None)
        if guidelines
        else None
    )
    return view, guide


# Mark the item shown (time on item starts here), in one conditional UPDATE. Only if nobody
# holds it: a concurrent submit of this very item holds the row lock, and waiting for it here
# (while holding our own locks) could deadlock, hence SKIP LOCKED. The status condition is
# re-checked on the newest row version, so a verdict committed meanwhile by a concurrent request
# is never overwritten with "served".
_STAMP = (
    update(Assignment)
    .where(
        Assignment.id == _ITEM_ID,
        Assignment.id
        == select(Assignment.id)
        .where(Assignment.id == _ITEM_ID)
        .with_for_update(skip_locked=True)
        .scalar_subquery(),
        Assignment.status.in_(QUEUED),
    )
    .values(
        served_at=bindparam("shown_at"),
        status=case((Assignment.status == "pending", "served"), else_=Assignment.status),
    )
    .execution_options(synchronize_session=False)
)


def _stamp_served(session: Session, assignment_id: int, now: datetime) -> None:
    core_connection(session).execute(_STAMP, {"assignment_id": assignment_id, "shown_at": now})


def serve(session: Session, assignment: Assignment, now: datetime | None = None) -> ItemView:
    """Mark the item shown now (time on item starts here) and build its blind view."""
    view, _guide = _item(session, assignment.id, assignment.rater_id)
    _stamp_served(session, assignment.id, now or _now())
    session.expire(assignment, ["served_at", "status"])
    return view


def _last_judgement(rater_id: int | BindParameter[int]) -> Select[Judgement]:
    """The rater's most recent live judgement in a running study."""
    return (
        select(Judgement)
        .join(Assignment, Assignment.id == Judgement.assignment_id)
        .join(Study, Study.id == Assignment.study_id)
        .where(
            Assignment.rater_id == rater_id,
            Study.status == "running",
            Judgement.withdrawn_at.is_(None),
        )
        .order_by(Judgement.created_at.desc(), Judgement.id.desc())
        .limit(1)
    )


def expired_leases() -> Select[Assignment]:
    """Served items of running studies still without a verdict, shown before `lease_cutoff`."""
    return (
        select(Assignment)
        .join(Study, Study.id == Assignment.study_id)
        .where(
            Study.status == "running",
            Assignment.status == "served",
            Assignment.served_at < bindparam("lease_cutoff"),
        )
    )


def _summary_query() -> Select[*tuple[Any, ...]]:
    """(done, total, next assignment id, item an undo would withdraw, any lease expired)."""
    finished = case((Assignment.status.in_(("done", "flagged")), 1), else_=0)
    counts = (
        _open_queue(_RATER)
        .with_only_columns(func.coalesce(func.sum(finished), 0), func.count())
        .where(Assignment.status.not_in(NOT_IN_QUEUE))  # not this rater's work now
        .subquery()
    )
    following = (
        _open_queue(_RATER)
        .with_only_columns(Assignment.id)
        .where(Assignment.status.in_(QUEUED))
        .order_by(Assignment.study_id, Assignment.position, Assignment.id)
        .limit(1)
        .scalar_subquery()
    )
    undoable = (
        _last_judgement(_RATER)
        .with_only_columns(Assignment.public_id)
        .where(Judgement.created_at >= bindparam("undo_since"))
        .scalar_subquery()
    )
    expired = expired_leases().with_only_columns(Assignment.id).limit(1).exists()
    done, total = counts.c
    return select(done, total, following, undoable, expired).select_from(counts)


_SUMMARY = _summary_query()
_NO_LEASE_CHECK = datetime(1970, 1, 1, tzinfo=UTC)
"""A lease cutoff before anything was served: no lease counts as expired."""


class _Summary(NamedTuple):
    done: int
    total: int
    next_id: int | None
    undo_item: str | None
    expired: bool


@dataclass(frozen=True)
class LeaseCheck:
    """Served items shown before `cutoff` are past their lease; `release` hands them back
    (judging.studies.leases.release_expired, same cutoff) and says how many moved."""

    cutoff: datetime
    release: Callable[[], int]


def _queue_summary(
    session: Session, rater_id: int, undo_window: timedelta, cutoff: datetime
) -> _Summary:
    """The rater's progress, next item and undo target, and whether any lease ran out."""
    params = {"rater_id": rater_id, "undo_since": _now() - undo_window, "lease_cutoff": cutoff}
    row = core_connection(session).execute(_SUMMARY, params).one()
    return _Summary(int(row[0] or 0), int(row[1] or 0), row[2], row[3], bool(row[4]))


def queue_state(
    session: Session,
    rater_id: int,
    undo_window: timedelta = DEFAULT_UNDO_WINDOW,
    leases: LeaseCheck | None = None,
) -> QueueState:
    """Progress, the next item (marked shown), its guidelines and what an undo would withdraw:
    one query to read the queue, one for the item, one to stamp it.

    With `leases`, expired leases go back to the pool before the queue is shown. The summary
    query also says whether there are any, so the common case (none) costs no statement of its
    own; when some moved, the queue is read again (one of them may have come to this rater).
    """
    cutoff = leases.cutoff if leases else _NO_LEASE_CHECK
    summary = _queue_summary(session, rater_id, undo_window, cutoff)
    if leases and summary.expired and leases.release():
        summary = _queue_summary(session, rater_id, undo_window, cutoff)
    done, total, next_id, undo_item, _expired = summary
    item, guide = None, None
    if next_id is not None:
        item, guide = _item(session, next_id, rater_id)
        _stamp_served(session, next_id, _now())
    return QueueState(done, total, item, undo_item is not None, undo_item, guide)


_OWN = (
    select(Assignment, Study.status)
    .join(Study, Study.id == Assignment.study_id)
    .where(Assignment.public_id == bindparam("public_id"))
)
# Serialises double submits of one item: the second waits, then sees the first's verdict.
# Only the assignment row: locking the study row too would serialise every rater.
_OWN_LOCKED = _OWN.with_for_update(of=Assignment).execution_options(populate_existing=True)


def _check_own(owner: int, study_status: str, rater_id: int) -> None:
    """404 if the item is someone else's, exactly as for an unknown id (so no rater learns which
    ids exist, or the state of a study they are not in); 409 if the rater's own study closed."""
    if owner != rater_id:
        raise _no_such_item()
    if study_status != "running":
        raise ConflictError("this study is closed")


def _no_such_item() -> NotFoundError:
    return NotFoundError("no such item")


_PUBLIC_ID_LENGTH: int = Assignment.__table__.c.public_id.type.length  # type: ignore[attr-defined]


def _could_exist(public_id: str) -> bool:
    """An id longer than the column is unknown without a query (PostgreSQL would refuse it)."""
    return len(public_id) <= _PUBLIC_ID_LENGTH


def own_assignment(
    session: Session, rater_id: int, public_id: str, *, lock: bool = False
) -> Assignment:
    """The rater's assignment by public id: 404 if unknown or someone else's."""
    query = _OWN_LOCKED if lock else _OWN
    row = (
        session.execute(query, {"public_id": public_id}).first()
        if _could_exist(public_id)
        else None
    )
    if row is None:
        raise _no_such_item()
    assignment, study_status = row
    _check_own(assignment.rater_id, study_status, rater_id)
    return assignment


class _Submitted(NamedTuple):
    """The columns of an assignment a verdict needs, read and locked without the ORM."""

    id: int
    rater_id: int
    status: str
    served_at: datetime | None
    study_status: str
    study_id: int
    allocation: str


# A verdict is the hottest write: plain columns (no entity, identity map or unit of work; the
# ORM's share was about half of record_judgement's CPU under load), same row lock.
_SUBMITTED = (
    select(
        Assignment.id,
        Assignment.rater_id,
        Assignment.status,
        Assignment.served_at,
        Study.status,
        Assignment.study_id,
        Study.allocation,
    )
    .join(Study, Study.id == Assignment.study_id)
    .where(Assignment.public_id == bindparam("public_id"))
    .with_for_update(of=Assignment)
)
_MARK_DONE = (
    update(Assignment.__table__)  # type: ignore[arg-type]
    .where(Assignment.__table__.c.id == _ITEM_ID)
    .values(status="done", done_at=bindparam("done_at"))
)


def _submitted(session: Session, rater_id: int, public_id: str) -> _Submitted:
    found = None
    if _could_exist(public_id):
        found = core_connection(session).execute(_SUBMITTED, {"public_id": public_id}).first()
    if found is None:
        raise _no_such_item()
    row = _Submitted(*found)
    _check_own(row.rater_id, row.study_status, rater_id)
    return row


def _forget(session: Session, assignment_id: int) -> None:
    """A Core write bypasses the identity map: expire a loaded copy so it is read afresh."""
    cached = session.identity_map.get(session.identity_key(Assignment, assignment_id))
    if cached is not None:
        session.expire(cached)


def item_gone(assignment: Assignment | _Submitted) -> ConflictError:
    """Why an item no longer takes a verdict from this rater."""
    if assignment.status == "released":
        return ConflictError(
            "this item went to another rater (it waited too long or was skipped); "
            "here is your next one"
        )
    if assignment.status == "flagged":
        return ConflictError("you marked this item as one you cannot judge")
    if assignment.status == "parked":
        return ConflictError(
            "this item is no longer needed (the study has enough verdicts on it for now); "
            "here is your next one"
        )
    return ConflictError("this item already has your verdict")


def parse_submission(
    choice: str | None, rationale: str | None, client_ms: str | None, key: str | None
) -> tuple[str, str | None, int | None, str]:
    """Validate raw form values; raises InvalidSubmission with a one-line reason."""
    if choice not in CHOICES:
        raise InvalidSubmission(f"choice must be one of {', '.join(CHOICES)}")
    text = (rationale or "").strip()
    if len(text) > MAX_RATIONALE_CHARS:
        raise InvalidSubmission(f"the rationale is limited to {MAX_RATIONALE_CHARS} characters")
    if not key or len(key) > 100:
        raise InvalidSubmission("the form is missing its submission key; reload the page")
    ms: int | None = None
    if client_ms not in (None, ""):
        try:
            ms = round(float(client_ms))
        except (TypeError, ValueError, OverflowError):
            raise InvalidSubmission("time on item must be a number of milliseconds") from None
        if ms < 0:
            raise InvalidSubmission("time on item cannot be negative")
    return choice, text or None, ms, key


def _time_on_item(served_at: datetime | None, client_ms: int | None, now: datetime) -> int | None:
    """Server-measured time, or the client's if it is plausible (never above the server's + 2 s)."""
    server_ms = None
    if served_at is not None:
        server_ms = max(0, int((now - _aware(served_at)).total_seconds() * 1000))
    if client_ms is not None and (server_ms is None or client_ms <= server_ms + 2000):
        return min(client_ms, MAX_TIME_MS)
    return min(server_ms, MAX_TIME_MS) if server_ms is not None else None


def record_judgement(
    session: Session,
    *,
    rater_id: int,
    public_id: str,
    choice: str,
    rationale: str | None,
    idempotency_key: str,
    client_ms: int | None = None,
    now: datetime | None = None,
) -> bool:
    """Store the verdict; returns False when it was already recorded (double submit, retry)."""
    now = now or _now()
    assignment = _submitted(session, rater_id, public_id)
    if _already_recorded(session, idempotency_key, assignment.id):
        return False
    if assignment.status not in SUBMITTABLE:
        raise item_gone(assignment)
    values = {
        "assignment_id": assignment.id,
        "choice": choice,
        "rationale": rationale,
        "time_on_item_ms": _time_on_item(assignment.served_at, client_ms, now),
        "idempotency_key": idempotency_key,
    }
    # Same key or same assignment recorded by a concurrent request: that one stands (and a key
    # that recorded another item is refused). ON CONFLICT instead of a savepoint: one statement.
    if core_connection(session).scalar(_insert_new(session, values)) is None:
        _key_holder(session, idempotency_key, assignment.id)
        return False
    core_connection(session).execute(_MARK_DONE, {"assignment_id": assignment.id, "done_at": now})
    _forget(session, assignment.id)
    if assignment.allocation == allocation.ADAPTIVE:
        _note_batch(session, assignment.study_id)
    return True


# Whether an adaptive study's next recomputation is due: `allocation_batch` verdicts since the
# last one (judging.studies.allocation). Judgements newer than the check are few, and the
# partial index on live judgements' created_at finds them without reading the study's others.
_DUE = select(
    select(func.count(Judgement.id))
    .join(Assignment, Assignment.id == Judgement.assignment_id)
    .where(
        Assignment.study_id == Study.id,
        Judgement.withdrawn_at.is_(None),
        Judgement.created_at >= func.coalesce(Study.allocation_checked_at, Study.created_at),
    )
    .scalar_subquery()
    >= Study.allocation_batch
).where(Study.id == bindparam("study_id"), Study.decided_at.is_(None))


def _note_batch(session: Session, study_id: int) -> None:
    """One statement: if a batch of verdicts has arrived, note the study for a recomputation
    after the commit (`judging.studies.allocation.recompute_due`, run by the caller)."""
    if core_connection(session).scalar(_DUE, {"study_id": study_id}):
        session.info.setdefault(allocation.DUE, set()).add(study_id)


def _insert_new(session: Session, values: dict[str, object]) -> ReturningInsert[tuple[int]]:
    """INSERT of a judgement that does nothing (returns no id) when a unique index refuses it."""
    if session.get_bind().dialect.name == "postgresql":
        return (
            postgresql.insert(Judgement)
            .values(values)
            .on_conflict_do_nothing()
            .returning(Judgement.id)
        )
    return sqlite.insert(Judgement).values(values).on_conflict_do_nothing().returning(Judgement.id)


_RECORDED = select(Judgement.assignment_id, Judgement.idempotency_key).where(
    or_(
        Judgement.idempotency_key == bindparam("key"),
        (Judgement.assignment_id == _ITEM_ID) & Judgement.withdrawn_at.is_(None),
    )
)


def _already_recorded(session: Session, key: str, assignment_id: int) -> bool:
    """True if this key already recorded this item (a retry) or the item has a live verdict;
    409 if the key recorded another item. One query for both questions."""
    rows = (
        core_connection(session)
        .execute(_RECORDED, {"key": key, "assignment_id": assignment_id})
        .all()
    )
    holder = next((a for a, k in rows if k == key), None)
    if holder is not None and holder != assignment_id:
        raise _key_used_elsewhere()
    return bool(rows)


def _key_used_elsewhere() -> ConflictError:
    return ConflictError(
        "this submission key was already used for another item, so nothing was saved "
        "for this one: reload the page and judge it again"
    )


def _key_holder(session: Session, key: str, assignment_id: int) -> bool:
    """True if this key already recorded this item (a retry); 409 if it recorded another one.

    Keys are single-use per verdict: silently treating a reused key as "already recorded"
    would drop this item's verdict without anyone knowing.
    """
    holder = session.scalar(select(Judgement.assignment_id).where(Judgement.idempotency_key == key))
    if holder is None:
        return False
    if holder != assignment_id:
        raise _key_used_elsewhere()
    return True


def skip(session: Session, *, rater_id: int, public_id: str, reason: str | None) -> Assignment:
    """Put the item back at the end of this rater's queue for the study, counting the skip
    (judging.studies.leases hands it on after too many)."""
    text = (reason or "").strip()
    if len(text) > MAX_SKIP_REASON_CHARS:
        raise InvalidSubmission(f"the skip reason is limited to {MAX_SKIP_REASON_CHARS} characters")
    assignment = own_assignment(session, rater_id, public_id, lock=True)
    if assignment.status not in QUEUED:
        return assignment
    last = session.scalar(
        select(func.max(Assignment.position)).where(
            Assignment.rater_id == rater_id, Assignment.study_id == assignment.study_id
        )
    )
    assignment.position = (last or 0) + 1
    assignment.status, assignment.skip_reason = "skipped", text or None
    assignment.skip_count += 1
    session.flush()
    return assignment


def last_undoable(session: Session, rater_id: int, window: timedelta) -> Judgement | None:
    """The rater's most recent judgement, if it is younger than the undo window."""
    judgement = session.scalar(_last_judgement(rater_id))
    if judgement is None or _aware(judgement.created_at) < _now() - window:
        return None
    return judgement


def undo(
    session: Session,
    *,
    rater_id: int,
    public_id: str,
    window: timedelta = DEFAULT_UNDO_WINDOW,
) -> bool:
    """Withdraw the verdict on the named item if it is still the rater's last one, within the
    window; the item comes back next. False if there is nothing to undo there (a second click).

    The judgement is marked withdrawn, never deleted, and the withdrawal is audited.
    """
    assignment = own_assignment(session, rater_id, public_id, lock=True)
    judgement = last_undoable(session, rater_id, window)
    if judgement is None or judgement.assignment_id != assignment.id:
        return False
    judgement.withdrawn_at = _now()
    assignment.status, assignment.done_at, assignment.served_at = "served", None, None
    session.flush()
    audit.record(
        session,
        "withdraw",
        study_id=assignment.study_id,
        actor_id=rater_id,
        assignment_id=assignment.id,
        judgement_id=judgement.id,
        choice=judgement.choice,
    )
    return True
