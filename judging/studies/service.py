"""Studies in the database: create, extend by checkpoints or raters, hand work over.

The pure decisions (who, in which order, which side) come from `judging.studies.assignment`; this
module loads ids, calls it, and writes rows. Functions flush but never commit.

Extension policy (documented choice): done, skipped and already-served assignments never move.
Adding a checkpoint creates its comparisons and spreads them over all current raters, least
loaded first. Adding a rater moves *unstarted* assignments (pending and never shown) from the
busiest raters to the newcomer until loads differ by at most one; no comparison ever gets the same
rater twice. Reassigning a rater's work hands every unfinished item (pending, served or skipped;
judged work stays theirs) to the other raters and removes that rater from the study.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from judging.data.models import (
    Assignment,
    Checkpoint,
    Comparison,
    Generation,
    Prompt,
    PromptSet,
    Rater,
    Study,
    StudyCheckpoint,
    StudyRater,
)
from judging.errors import ConflictError, NotFoundError
from judging.settings import new_token
from judging.studies import assignment as plan

_sides = random.SystemRandom()  # unpredictable: the side must not be guessable from a seed


def _rng(study: Study, purpose: str) -> random.Random:
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


def _checkpoints(session: Session, ids: Sequence[int]) -> list[Checkpoint]:
    found = {c.id: c for c in session.scalars(select(Checkpoint).where(Checkpoint.id.in_(ids)))}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFoundError(f"checkpoint(s) {', '.join(map(str, missing))} do not exist")
    return [found[i] for i in ids]


def _check_raters(session: Session, ids: Sequence[int]) -> None:
    found = set(session.scalars(select(Rater.id).where(Rater.id.in_(ids))))
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFoundError(f"rater(s) {', '.join(map(str, missing))} do not exist")


def create_study(
    session: Session,
    *,
    name: str,
    checkpoint_ids: Sequence[int],
    prompt_set_id: int,
    rater_ids: Sequence[int],
    reference_checkpoint_id: int | None = None,
    raters_per_comparison: int = 2,
    attention_check_rate: float = 0.05,
    seed: int | None = None,
) -> Study:
    """Create a running study with its comparisons and every rater's shuffled queue."""
    checkpoint_ids = list(dict.fromkeys(checkpoint_ids))
    rater_ids = list(dict.fromkeys(rater_ids))
    if not name.strip():
        raise ConflictError("a study needs a name")
    if session.scalar(select(Study.id).where(Study.name == name)) is not None:
        raise ConflictError(f"a study named {name!r} already exists")
    if not checkpoint_ids:
        raise ConflictError("pick at least one checkpoint to judge")
    checkpoints = _checkpoints(session, checkpoint_ids)
    reference_id = reference_checkpoint_id or _base_of(session, checkpoints[0])
    if reference_id in checkpoint_ids:
        raise ConflictError("the reference cannot also be one of the judged checkpoints")
    _checkpoints(session, [reference_id])
    prompt_set = session.get(PromptSet, prompt_set_id)
    if prompt_set is None:
        raise NotFoundError(f"prompt set {prompt_set_id} does not exist")
    if prompt_set.split != "heldout":
        raise ConflictError(
            f"prompt set {prompt_set.name!r} is a {prompt_set.split} set; use a held-out set"
        )
    _check_raters(session, rater_ids)
    if len(rater_ids) < raters_per_comparison:
        raise ConflictError(
            f"{raters_per_comparison} raters per comparison need at least that many raters; "
            f"got {len(rater_ids)}"
        )
    if not 0 <= attention_check_rate <= 1:
        raise ConflictError("the attention-check rate must be within 0..1")
    study = Study(
        name=name.strip(),
        reference_checkpoint_id=reference_id,
        prompt_set_id=prompt_set_id,
        raters_per_comparison=raters_per_comparison,
        attention_check_rate=attention_check_rate,
        seed=seed if seed is not None else random.SystemRandom().randrange(2**31),
        status="running",
    )
    session.add(study)
    session.flush()
    session.add_all(StudyRater(study_id=study.id, rater_id=r) for r in rater_ids)
    _extend(session, study, checkpoint_ids)
    return study


def _base_of(session: Session, checkpoint: Checkpoint) -> int:
    base = session.scalar(
        select(Checkpoint.id).where(
            Checkpoint.run_id == checkpoint.run_id, Checkpoint.kind == "base"
        )
    )
    if base is None:
        raise NotFoundError(
            f"run of checkpoint {checkpoint.id} has no base checkpoint; pick a reference"
        )
    return base


def _generations(
    session: Session, checkpoint_ids: Sequence[int], prompt_set_id: int
) -> dict[tuple[int, int], Generation]:
    """(checkpoint, prompt) -> the generation with the lowest seed."""
    rows = session.scalars(
        select(Generation)
        .join(Prompt, Prompt.id == Generation.prompt_id)
        .where(Generation.checkpoint_id.in_(checkpoint_ids), Prompt.prompt_set_id == prompt_set_id)
        .order_by(Generation.seed.desc())
    )
    return {(g.checkpoint_id, g.prompt_id): g for g in rows}


def _extend(session: Session, study: Study, checkpoint_ids: Sequence[int]) -> int:
    """Add comparisons for these checkpoints and assign them; returns how many were created."""
    session.add_all(StudyCheckpoint(study_id=study.id, checkpoint_id=c) for c in checkpoint_ids)
    ref = study.reference_checkpoint_id
    gens = _generations(session, [*checkpoint_ids, ref], study.prompt_set_id)
    prompts = session.scalars(
        select(Prompt.id)
        .where(Prompt.prompt_set_id == study.prompt_set_id)
        .order_by(Prompt.position)
    ).all()
    rng = _rng(study, f"extend:{','.join(map(str, checkpoint_ids))}")
    normal = [
        Comparison(
            study_id=study.id,
            prompt_id=p,
            checkpoint_id=c,
            kind="normal",
            candidate_generation_id=gens[(c, p)].id,
            reference_generation_id=gens[(ref, p)].id,
        )
        for c in checkpoint_ids
        for p in prompts
        if (c, p) in gens and (ref, p) in gens
    ]
    attention = []
    for twin in plan.pick_attention(normal, study.attention_check_rate, rng):
        text, how = plan.degrade(gens[(twin.checkpoint_id, twin.prompt_id)].text, rng)
        attention.append(
            Comparison(
                study_id=study.id,
                prompt_id=twin.prompt_id,
                checkpoint_id=twin.checkpoint_id,
                kind="attention",
                candidate_generation_id=twin.candidate_generation_id,
                reference_generation_id=None,
                degraded_text=text,
                degradation=how,
            )
        )
    session.add_all(normal + attention)
    session.flush()
    _assign(session, study, [c.id for c in normal + attention], rng)
    return len(normal) + len(attention)


def _loads(session: Session, study_id: int) -> Counter[int]:
    rows = session.execute(
        select(Assignment.rater_id, func.count())
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study_id)
        .group_by(Assignment.rater_id)
    )
    return Counter(dict(rows.all()))


def _assign(session: Session, study: Study, comparison_ids: list[int], rng: random.Random) -> None:
    raters = study_rater_ids(session, study.id)
    chosen = plan.assign_raters(
        comparison_ids, raters, study.raters_per_comparison, rng, _loads(session, study.id)
    )
    pairs = [(c, r) for c, rs in chosen.items() for r in rs]
    sides = plan.draw_sides(len(pairs), _sides)
    session.add_all(
        Assignment(
            public_id=new_token(),
            comparison_id=c,
            rater_id=r,
            checkpoint_side=side,
            position=0,
            status="pending",
        )
        for (c, r), side in zip(pairs, sides, strict=True)
    )
    session.flush()
    for rater in {r for _, r in pairs}:
        requeue(session, study, rater, rng)


def _study_assignments(session: Session, study_id: int) -> list[tuple[Assignment, int]]:
    rows = session.execute(
        select(Assignment, Comparison.prompt_id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study_id)
        .order_by(Assignment.position, Assignment.id)
    )
    return [(a, p) for a, p in rows]


def _started(a: Assignment) -> bool:
    return a.status in ("done", "skipped") or a.served_at is not None


def requeue(session: Session, study: Study, rater_id: int, rng: random.Random) -> None:
    """Reshuffle a rater's unstarted items after everything started, keeping prompts apart."""
    mine = [(a, p) for a, p in _study_assignments(session, study.id) if a.rater_id == rater_id]
    started = [(a, p) for a, p in mine if _started(a)]
    fresh = [(a, p) for a, p in mine if not _started(a)]
    last = max(started, key=lambda ap: ap[0].position, default=None)
    base = last[0].position + 1 if last else 0
    by_id = {a.id: a for a, _ in fresh}
    order = plan.order_queue([(a.id, p) for a, p in fresh], rng, last[1] if last else None)
    for offset, assignment_id in enumerate(order):
        by_id[assignment_id].position = base + offset
    session.flush()


def add_checkpoints(session: Session, study: Study, checkpoint_ids: Sequence[int]) -> int:
    """Judge more checkpoints in a running study; returns the number of new comparisons."""
    current = set(study_checkpoint_ids(session, study.id))
    new = [c for c in dict.fromkeys(checkpoint_ids) if c not in current]
    if not new:
        raise ConflictError("those checkpoints are already in the study")
    _checkpoints(session, new)
    if study.reference_checkpoint_id in new:
        raise ConflictError("the reference cannot also be one of the judged checkpoints")
    return _extend(session, study, new)


def add_rater(session: Session, study: Study, rater_id: int) -> int:
    """Add a rater and give them a balanced share of unstarted work; returns items moved."""
    _check_raters(session, [rater_id])
    if rater_id in study_rater_ids(session, study.id):
        raise ConflictError("that rater is already in the study")
    session.add(StudyRater(study_id=study.id, rater_id=rater_id))
    session.flush()
    return rebalance(session, study)


def _taken(rows: list[tuple[Assignment, int]]) -> dict[int, set[int]]:
    taken: dict[int, set[int]] = defaultdict(set)
    for a, _ in rows:
        taken[a.comparison_id].add(a.rater_id)
    return taken


def rebalance(session: Session, study: Study) -> int:
    """Move unstarted assignments until rater loads differ by at most one."""
    rows = _study_assignments(session, study.id)
    movable = [plan.Movable(a.id, a.comparison_id, a.rater_id) for a, _ in rows if not _started(a)]
    load = Counter(a.rater_id for a, _ in rows)
    raters = study_rater_ids(session, study.id)
    rng = _rng(study, f"rebalance:{len(rows)}:{len(raters)}")
    moves = plan.plan_rebalance(movable, _taken(rows), load, raters, rng)
    return _apply_moves(session, study, rows, moves, rng)


def _apply_moves(
    session: Session,
    study: Study,
    rows: list[tuple[Assignment, int]],
    moves: dict[int, int],
    rng: random.Random,
) -> int:
    by_id = {a.id: a for a, _ in rows}
    touched: set[int] = set()
    for assignment_id, target in moves.items():
        a = by_id[assignment_id]
        touched.update({a.rater_id, target})
        # A new public id so the previous holder's open page cannot submit for it.
        a.rater_id, a.public_id = target, new_token()
        a.status, a.served_at, a.skip_reason = "pending", None, None
    session.flush()
    for rater in touched:
        requeue(session, study, rater, rng)
    return len(moves)


def reassign_rater_work(session: Session, study: Study, rater_id: int) -> tuple[int, int]:
    """Hand a rater's unfinished items to the others and drop them from the study.

    Returns (moved, stuck): stuck items had no eligible rater (everyone else already on them).
    """
    raters = study_rater_ids(session, study.id)
    if rater_id not in raters:
        raise NotFoundError("that rater is not in this study")
    rows = _study_assignments(session, study.id)
    movable = [
        plan.Movable(a.id, a.comparison_id, a.rater_id)
        for a, _ in rows
        if a.rater_id == rater_id and a.status != "done"
    ]
    receivers = [r for r in raters if r != rater_id]
    rng = _rng(study, f"handover:{rater_id}:{len(rows)}")
    load = Counter(a.rater_id for a, _ in rows)
    moves, stuck = plan.plan_handover(movable, _taken(rows), load, receivers, rng)
    moved = _apply_moves(session, study, rows, moves, rng)
    if not stuck:
        link = session.scalar(
            select(StudyRater).where(
                StudyRater.study_id == study.id, StudyRater.rater_id == rater_id
            )
        )
        if link is not None:
            session.delete(link)
            session.flush()
    return moved, len(stuck)


def set_status(session: Session, study: Study, status: str) -> None:
    if status not in ("running", "closed"):
        raise ConflictError(f"a study can be running or closed, not {status!r}")
    study.status = status
    session.flush()
