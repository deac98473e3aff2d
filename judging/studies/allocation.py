"""Adaptive allocation in the database: which of a study's items are served, and when it stops.

The policy is `judging.stats.allocation` (successive elimination on the recommendation's
posterior); this module keeps its state on the study row and turns it into item statuses.

Design (the invariants the estimates rely on):
- At creation every comparison and assignment is made as in a uniform study. Each prompt gets a
  rank in one random order fixed by the study seed (`Comparison.prompt_rank`, the same for every
  checkpoint), never chosen from verdicts.
- An item is *servable* while the study is undecided, its checkpoint is a contender and its
  prompt's rank is below the study's *frontier*. Everything else open is `parked`: out of every
  rater's queue, not deleted. So contenders are always served the same prompts (paired
  differences stay available) and an eliminated checkpoint stops on a prefix of the order.
- The frontier only moves forward and only on counts of open work, never on verdicts: it starts
  at the burn-in and advances rank by rank until every remaining rater who still has contender
  items beyond it holds at least `per_comparison x contenders` open items (no rater waits on
  the others' pace).
- The state is recomputed (`recompute`: evidence, policy, statuses, ~30-60 ms) once a batch of
  verdicts has arrived: the verdict itself only checks, in one statement, whether `allocation_batch`
  (one prompt's worth: raters per comparison x contenders) new verdicts came in since the last
  recomputation (`judging.studies.rating`), and the request runs the recomputation after the
  verdict is committed (`recompute_due`), so a failed recomputation never loses a verdict. A
  rater whose queue ran dry while they still have contender items beyond the frontier triggers
  one too (`top_up`).
- The policy reads the verdicts as they stood at the last *look* reached (`AllocationRule.looks`,
  prompts per contender: 30, 40, 50, 60, 80, ...; `stats.allocation.at_last_look`), not after
  every batch: checked after every batch, the posterior crossed the target on noise and the
  stated P at the stop overstated the truth (the best-of-n ladder through HTTP: stated 0.91,
  7/10 within delta). The replays in the benches use the same looks.
- Concurrency: a recomputation holds the study row (FOR UPDATE; the verdict path uses SKIP
  LOCKED and leaves it to the one running). Items are pre-assigned to raters as in uniform
  studies, so two raters never receive the same item; a verdict on an item parked while its
  rater had it on screen is stored and counted (`rating.record_judgement` accepts `parked`).
- Decided: once P(the leader is within delta of the best) reaches the study's target, every
  open item is parked and `decided_at` / `decided_after` record when and after how many
  verdicts. `resume` clears them (with a higher target) and recomputes, which serves again.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, func, not_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from judging.data.models import (
    QUEUED_STATUSES,
    Assignment,
    Comparison,
    Judgement,
    Prompt,
    Study,
    StudyCheckpoint,
    StudyRater,
)
from judging.errors import ConflictError
from judging.stats.allocation import AllocationRule, allocation_state, at_last_look
from judging.stats.rule import RecommendationRule
from judging.studies.evidence import checkpoint_infos, load_study_evidence

log = logging.getLogger(__name__)

ADAPTIVE = "adaptive"
UNIFORM = "uniform"
DEFAULT_TARGET = 0.9
MAX_TARGET = 0.999
"""The highest target `resume` proposes: P is a share of posterior draws."""
BURN_IN = AllocationRule().burn_in
DUE = "adaptive_allocation_due"
"""`Session.info` key: ids of studies whose recomputation a verdict of this session made due
(`judging.studies.rating` adds them, `recompute_due` runs them after the commit)."""


def check_settings(allocation: str, target: float, checkpoints: int) -> None:
    """Refuse an allocation a study cannot run with (before anything is created)."""
    if allocation not in (UNIFORM, ADAPTIVE):
        raise ConflictError(f"allocation must be uniform or adaptive, not {allocation!r}")
    if allocation == UNIFORM:
        return
    if not 0.5 < target < 1:
        raise ConflictError(
            f"the adaptive target is a probability within (0.5, 1) exclusive, not {target}"
        )
    if checkpoints < 2:
        raise ConflictError(
            "adaptive allocation chooses between checkpoints: pick at least two "
            "(a single checkpoint needs a uniform study)"
        )


def prompt_ranks(session: Session, study: Study) -> dict[int, int]:
    """prompt -> its place in the study's fixed random prompt order (seeded by the study only)."""
    prompts = list(
        session.scalars(
            select(Prompt.id).where(Prompt.prompt_set_id == study.prompt_set_id).order_by(Prompt.id)
        )
    )
    random.Random(f"{study.seed}:prompt-order").shuffle(prompts)
    return {p: rank for rank, p in enumerate(prompts)}


def _now() -> datetime:
    return datetime.now(UTC)


def _lock(session: Session, study_id: int, *, wait: bool) -> bool:
    """Take the study row for a recomputation; False if another one holds it (and not `wait`)."""
    query = select(Study.id).where(Study.id == study_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=not wait)
    return session.scalar(query) is not None


def _prompt_count(session: Session, study: Study) -> int:
    count = session.scalar(
        select(func.count()).select_from(Prompt).where(Prompt.prompt_set_id == study.prompt_set_id)
    )
    return int(count or 0)


def _burn_in(prompts: int) -> int:
    return max(1, min(BURN_IN, prompts))


def live_verdicts(session: Session, study_id: int) -> int:
    """Human verdicts (not withdrawn) on the study's normal comparisons, excluded raters too."""
    count = session.scalar(
        select(func.count(Judgement.id))
        .join(Assignment, Assignment.id == Judgement.assignment_id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(
            Assignment.study_id == study_id,
            Comparison.kind == "normal",
            Judgement.withdrawn_at.is_(None),
        )
    )
    return int(count or 0)


def budget(session: Session, study: Study) -> int:
    """Verdicts a uniform study would ask for: N per normal comparison that needs humans."""
    count = session.scalar(
        select(func.count())
        .select_from(Comparison)
        .where(
            Comparison.study_id == study.id,
            Comparison.kind == "normal",
            Comparison.auto_choice.is_(None),
        )
    )
    return int(count or 0) * study.raters_per_comparison


def start(session: Session, study: Study) -> None:
    """The state of a new adaptive study: every checkpoint in contention, the burn-in open."""
    study.allocation_contenders = None  # None: not computed yet, every checkpoint is served
    study.allocation_frontier = 0
    recompute(session, study, wait=True)


def recompute(session: Session, study: Study, *, wait: bool) -> bool:
    """Recompute the contenders, the decision and the frontier, and set item statuses to match.

    Returns False when nothing was done: not adaptive, or (without `wait`) another
    recomputation holds the study. Flushes, never commits.
    """
    if study.allocation != ADAPTIVE or not _lock(session, study.id, wait=wait):
        return False
    session.refresh(study)
    if study.decided_at is None:
        _update_state(session, study)
    _apply(session, study)
    # The database's clock, as the judgements' created_at the due check compares it with.
    study.allocation_checked_at = func.now()
    session.flush()
    session.refresh(study)
    return True


def _update_state(session: Session, study: Study) -> None:
    prompts = _prompt_count(session, study)
    rule = AllocationRule(target=study.allocation_target, burn_in=_burn_in(prompts))
    exhausted = _exhausted(session, study)
    evidence = load_study_evidence(session, study.id).evidence
    serving = (
        {e.checkpoint_id for e in evidence}
        if study.allocation_contenders is None
        else set(study.allocation_contenders)
    )
    looked = at_last_look(evidence, prompt_ranks(session, study), serving, exhausted, rule)
    state = allocation_state(looked, RecommendationRule(), rule, exhausted)
    study.allocation_leader_id, study.allocation_p = state.leader, state.p_within_delta
    if state.decided:
        # Kept (nothing is served once decided): a resume reads the verdicts at the look this
        # decision was taken at, so a higher target is not met at once by the verdicts that
        # arrived after it.
        study.allocation_contenders = sorted(serving)
        study.decided_at = _now()
        study.decided_after = live_verdicts(session, study.id)
        return
    contenders = sorted(state.contenders)
    study.allocation_contenders = contenders
    study.allocation_batch = max(1, study.raters_per_comparison * len(contenders))
    study.allocation_frontier = _advance(session, study, contenders, prompts, rule.burn_in)


def _exhausted(session: Session, study: Study) -> set[int]:
    """Checkpoints with no comparison left to serve (every item judged, flagged or handed on):
    more verdicts cannot come, so they neither hold up the burn-in nor the decision."""
    left = (
        select(Comparison.checkpoint_id)
        .join(Assignment, Assignment.comparison_id == Comparison.id)
        .where(
            Assignment.study_id == study.id,
            Assignment.status.in_((*QUEUED_STATUSES, "parked")),
        )
    )
    judged = select(StudyCheckpoint.checkpoint_id).where(StudyCheckpoint.study_id == study.id)
    return set(session.scalars(judged)) - set(session.scalars(left.distinct()))


def _advance(
    session: Session, study: Study, contenders: Sequence[int], prompts: int, burn_in: int
) -> int:
    """The new frontier: at least the burn-in, then rank by rank until every remaining rater
    with contender items beyond it has `per_comparison x contenders` open items.

    Only counts of open items decide this, never verdicts. Raters who left (revoked, excluded)
    are not waited for: their work is handed on by `judging.studies.departures`.
    """
    # Imported here: departures imports the study service, which imports this module.
    from judging.studies.departures import departed_raters

    frontier = max(study.allocation_frontier, min(prompts, burn_in))
    rows = session.execute(
        select(Assignment.rater_id, Comparison.prompt_rank)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(
            Assignment.study_id == study.id,
            Comparison.checkpoint_id.in_(list(contenders)),
            Assignment.status.in_((*QUEUED_STATUSES, "parked")),
        )
    ).all()
    members = set(
        session.scalars(select(StudyRater.rater_id).where(StudyRater.study_id == study.id))
    )
    present = members - set(departed_raters(session, study.id, idle=None))
    opened: Counter[int] = Counter()
    ahead: dict[int, Counter[int]] = defaultdict(Counter)  # rank -> rater -> items
    beyond: Counter[int] = Counter()
    for rater, rank in rows:
        if rater not in present or rank is None:
            continue
        if rank < frontier:
            opened[rater] += 1
        else:
            ahead[rank][rater] += 1
            beyond[rater] += 1
    wanted = max(2, study.raters_per_comparison * len(contenders))
    while frontier < prompts and any(beyond[r] and opened[r] < wanted for r in present):
        for rater, items in ahead.pop(frontier, Counter()).items():
            opened[rater] += items
            beyond[rater] -= items
        frontier += 1
    return frontier


def _served_checkpoints(study: Study) -> list[int]:
    """Checkpoints whose items may be served now: the contenders, none once decided."""
    return [] if study.decided_at is not None else list(study.allocation_contenders or [])


def _apply(session: Session, study: Study) -> None:
    """Park the open items of comparisons that are not servable; open the parked ones that are."""
    contenders = _served_checkpoints(study)
    servable = and_(
        Comparison.checkpoint_id.in_(contenders),
        Comparison.prompt_rank < study.allocation_frontier,
    )
    comparisons = select(Comparison.id).where(Comparison.study_id == study.id)
    session.execute(
        update(Assignment)
        .where(
            Assignment.study_id == study.id,
            Assignment.status.in_(QUEUED_STATUSES),
            Assignment.comparison_id.in_(comparisons.where(not_(servable))),
        )
        .values(status="parked")
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Assignment)
        .where(
            Assignment.study_id == study.id,
            Assignment.status == "parked",
            Assignment.comparison_id.in_(comparisons.where(servable)),
        )
        .values(status="pending")
        .execution_options(synchronize_session=False)
    )
    session.expire_all()


def recompute_due(session: Session) -> None:
    """Run the recomputations this session's verdicts made due, each in its own transaction.

    Call after the verdicts are committed. A recomputation that fails (a lock timeout, a
    deadlock with a concurrent hand-over) is rolled back and logged: the next batch of verdicts
    makes it due again, and the verdicts themselves are already stored.
    """
    due = session.info.pop(DUE, set())
    for study_id in sorted(due):
        try:
            study = session.get(Study, study_id)
            if study is not None and recompute(session, study, wait=False):
                session.commit()
            else:
                session.rollback()
        except DBAPIError:
            session.rollback()
            log.warning("adaptive allocation of study %s not recomputed", study_id, exc_info=True)


def top_up(session: Session, rater_id: int) -> bool:
    """For a rater whose queue is empty: recompute the undecided adaptive studies where they
    still have contender items beyond the frontier. True if any was recomputed (read the queue
    again). One query when the rater has nothing parked."""
    rows = session.execute(
        select(Assignment.study_id, Comparison.checkpoint_id, func.max(Comparison.prompt_rank))
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .join(Study, Study.id == Assignment.study_id)
        .where(
            Assignment.rater_id == rater_id,
            Assignment.status == "parked",
            Study.allocation == ADAPTIVE,
            Study.status == "running",
            Study.decided_at.is_(None),
        )
        .group_by(Assignment.study_id, Comparison.checkpoint_id)
    ).all()
    recomputed = False
    for study_id in sorted({study_id for study_id, _, _ in rows}):
        study = session.get(Study, study_id)
        if study is None:
            continue
        contenders = set(study.allocation_contenders or [])
        if any(
            s == study_id
            and c in contenders
            and last is not None
            and last >= study.allocation_frontier
            for s, c, last in rows
        ):
            recomputed |= recompute(session, study, wait=True)
    return recomputed


def resume(session: Session, study: Study, target: float | None = None) -> float:
    """Serve a decided study again, for more precision: clear the decision, raise the target
    (default: halve the remaining doubt, 1 - (1 - P) / 2) and recompute. Returns the target."""
    if study.allocation != ADAPTIVE:
        raise ConflictError("only an adaptive study stops early; this one asks for everything")
    _lock(session, study.id, wait=True)
    session.refresh(study)
    if study.decided_at is None:
        raise ConflictError("this study is not decided: it is still serving its contenders")
    reached = study.allocation_p if study.allocation_p is not None else study.allocation_target
    if target is None and reached >= MAX_TARGET:
        raise ConflictError(
            f"the study reached P = {reached:.3f}: no target left above it (the estimate "
            "rests on a finite number of posterior draws)"
        )
    new = target if target is not None else min(MAX_TARGET, 1 - (1 - reached) / 2)
    if not 0.5 < new < 1:
        raise ConflictError(f"the target is a probability within (0.5, 1) exclusive, not {new}")
    if new <= reached:
        raise ConflictError(
            f"the study already reached P = {reached:.3f}; resume with a higher target "
            f"(up to 1, exclusive) for more precision"
        )
    study.allocation_target = new
    study.decided_at, study.decided_after = None, None
    session.flush()
    recompute(session, study, wait=True)
    return new


@dataclass(frozen=True)
class AllocationView:
    """What the study and QC pages say about an adaptive study."""

    target: float
    decided: bool
    verdicts: int
    """Live verdicts on normal comparisons now (a verdict after the stop counts too)."""
    decided_after: int | None
    budget: int
    leader: str | None
    p_within_delta: float | None
    contenders: list[str]
    eliminated: list[str]
    frontier: int
    prompts: int
    parked: int

    @property
    def line(self) -> str:
        if self.decided and self.decided_after is not None:
            text = f"decided after {self.decided_after} of {self.budget} verdicts"
            if self.leader and self.p_within_delta is not None:
                text += f": {self.leader} is within delta of the best with P = "
                text += f"{self.p_within_delta:.2f} (target {self.target:.2f})"
            if self.verdicts > self.decided_after:
                text += f"; {self.verdicts - self.decided_after} verdicts arrived after the stop"
            return text
        return (
            f"adaptive: {self.verdicts} of {self.budget} verdicts so far, "
            f"{len(self.contenders)} checkpoint(s) in contention, prompts 1-{self.frontier} of "
            f"{self.prompts} open (stops at P = {self.target:.2f})"
        )


def describe(session: Session, study: Study) -> AllocationView | None:
    """The adaptive state of a study for its pages; None for a uniform study."""
    if study.allocation != ADAPTIVE:
        return None
    ids = list(
        session.scalars(
            select(Comparison.checkpoint_id).where(Comparison.study_id == study.id).distinct()
        )
    )
    labels = {i: info.label for i, info in checkpoint_infos(session, ids).items()}
    contenders = set(study.allocation_contenders or []) if study.decided_at is None else set()
    parked = session.scalar(
        select(func.count())
        .select_from(Assignment)
        .where(Assignment.study_id == study.id, Assignment.status == "parked")
    )
    leader = study.allocation_leader_id
    return AllocationView(
        target=study.allocation_target,
        decided=study.decided_at is not None,
        verdicts=live_verdicts(session, study.id),
        decided_after=study.decided_after,
        budget=budget(session, study),
        leader=labels.get(leader) if leader is not None else None,
        p_within_delta=study.allocation_p,
        contenders=sorted(labels[i] for i in contenders if i in labels),
        eliminated=sorted(
            labels[i] for i in ids if i not in contenders and study.decided_at is None
        ),
        frontier=study.allocation_frontier,
        prompts=_prompt_count(session, study),
        parked=int(parked or 0),
    )
