"""Who judges each comparison and in which order: raters assigned under the blindness rules
(no rater is shown a text twice), sides drawn at random, each rater's queue shuffled."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from judging.data.models import (
    Assignment,
    Comparison,
    Generation,
    Study,
)
from judging.settings import new_token
from judging.studies import assignment as plan
from judging.studies.lookups import study_rater_ids
from judging.studies.rating import comparison_texts

_sides = random.SystemRandom()  # unpredictable: the side must not be guessable from a seed


def _loads(session: Session, study_id: int) -> Counter[int]:
    rows = session.execute(
        select(Assignment.rater_id, func.count())
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study_id)
        .group_by(Assignment.rater_id)
    )
    return Counter(dict(rows.all()))


def shown_texts(session: Session, comparison: Comparison) -> frozenset[str]:
    """Keys of the texts a rater sees on this comparison."""
    return frozenset(plan.text_key(t) for t in comparison_texts(session, comparison))


def comparison_keys(session: Session, study_id: int) -> dict[int, frozenset[str]]:
    """comparison -> keys of the texts a rater sees on it (as `shown_texts`), for the whole study in
    one query rather than one per comparison."""
    mine, theirs = aliased(Generation), aliased(Generation)
    rows = session.execute(
        select(Comparison.id, Comparison.kind, mine.text, theirs.text, Comparison.degraded_text)
        .join(mine, mine.id == Comparison.candidate_generation_id)
        .outerjoin(theirs, theirs.id == Comparison.reference_generation_id)
        .where(Comparison.study_id == study_id)
    )
    out: dict[int, frozenset[str]] = {}
    for comparison_id, kind, candidate, reference, degraded in rows:
        other = degraded if kind == "attention" else reference
        out[comparison_id] = frozenset(plan.text_key(t) for t in (candidate, other or ""))
    return out


def seen_texts(session: Session, study_id: int) -> dict[int, set[str]]:
    """rater -> keys of every text their assignments in this study show (or showed)."""
    keys = comparison_keys(session, study_id)
    out: dict[int, set[str]] = defaultdict(set)
    rows = session.execute(
        select(Assignment.rater_id, Assignment.comparison_id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study_id)
    )
    for rater_id, comparison_id in rows:
        out[rater_id] |= keys[comparison_id]
    return out


NO_UNSEEN_RATER = "fewer raters than asked: the others had already been shown one of its texts"


def assign(
    session: Session, study: Study, comparisons: list[Comparison], rng: random.Random
) -> int:
    """Give the comparisons their raters; returns how many attention checks were dropped."""
    raters = study_rater_ids(session, study.id)
    texts = {c.id: shown_texts(session, c) for c in comparisons}
    seen, load = seen_texts(session, study.id), _loads(session, study.id)
    chosen: dict[int, list[int]] = {}
    # Real comparisons first: an attention check must never take a rater a real item needed.
    for kind in ("normal", "attention"):
        batch = [c.id for c in comparisons if c.kind == kind]
        picked = plan.assign_raters(
            batch, raters, study.raters_per_comparison, rng, load, texts=texts, seen=seen
        )
        for comparison_id, people in picked.items():
            for rater in people:
                load[rater] += 1
                seen[rater] |= texts[comparison_id]
        chosen.update(picked)
    dropped = 0
    for comparison in comparisons:
        if comparison.kind == "attention" and not chosen[comparison.id]:
            # A check nobody can take without meeting its text twice checks nothing.
            session.delete(comparison)
            dropped += 1
        elif len(chosen[comparison.id]) < study.raters_per_comparison:
            comparison.closed_reason = NO_UNSEEN_RATER
    pairs = [(c, r) for c, rs in chosen.items() for r in rs]
    sides = plan.draw_sides(len(pairs), _sides)
    session.add_all(
        Assignment(
            public_id=new_token(),
            comparison_id=c,
            study_id=study.id,
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
    return dropped


def study_assignments(session: Session, study_id: int) -> list[tuple[Assignment, int]]:
    rows = session.execute(
        select(Assignment, Comparison.prompt_id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study_id)
        .order_by(Assignment.position, Assignment.id)
    )
    return [(a, p) for a, p in rows]


def is_started(a: Assignment) -> bool:
    return a.status in ("done", "skipped") or a.served_at is not None


def requeue(session: Session, study: Study, rater_id: int, rng: random.Random) -> None:
    """Reshuffle a rater's unstarted items after everything started, keeping prompts apart."""
    mine = [(a, p) for a, p in study_assignments(session, study.id) if a.rater_id == rater_id]
    started = [(a, p) for a, p in mine if is_started(a)]
    fresh = [(a, p) for a, p in mine if not is_started(a)]
    last = max(started, key=lambda ap: ap[0].position, default=None)
    base = last[0].position + 1 if last else 0
    by_id = {a.id: a for a, _ in fresh}
    order = plan.order_queue([(a.id, p) for a, p in fresh], rng, last[1] if last else None)
    for offset, assignment_id in enumerate(order):
        by_id[assignment_id].position = base + offset
    session.flush()
