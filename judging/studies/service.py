"""Studies in the database: create, extend by checkpoints or raters, close.

The pure decisions (who, in which order, which side) come from `judging.studies.assignment`;
which responses are compared from `pairing`, who judges them in which order from `queues`, moves
between raters from `transfers`. Functions flush but never commit.

Extension policy (documented choice): done, skipped and already-served assignments never move.
Adding a checkpoint creates its comparisons and spreads them over all current raters, least
loaded first. Adding a rater moves *unstarted* assignments (pending and never shown) from the
busiest raters to the newcomer until loads differ by at most one; no comparison ever gets the same
rater twice. Reassigning a rater's work hands every unfinished item (pending, served or skipped;
judged work stays theirs) to the other raters and removes that rater from the study.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from judging.data.models import (
    Comparison,
    PromptSet,
    Study,
    StudyCheckpoint,
    StudyRater,
)
from judging.errors import ConflictError, NotFoundError
from judging.studies import allocation as adaptive
from judging.studies import assignment as plan
from judging.studies.lookups import (
    check_raters,
    get_checkpoints,
    study_checkpoint_ids,
    study_rater_ids,
    study_rng,
)
from judging.studies.pairing import (
    attention_check,
    base_checkpoint_of,
    first_generations,
    pair_normal,
    plural,
    spare_samples,
)
from judging.studies.queues import NO_UNSEEN_RATER, assign, comparison_keys
from judging.studies.transfers import lock_study, rebalance


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
    base_reuse: int = 1,
    allocation: str = adaptive.UNIFORM,
    allocation_target: float = adaptive.DEFAULT_TARGET,
) -> Study:
    """Create a running study with its comparisons and every rater's shuffled queue.

    `base_reuse` > 1 lets one base response be the reference of that many comparisons on its
    prompt (fewer base samples to generate); those comparisons go to disjoint raters, so it
    needs `base_reuse * raters_per_comparison` raters at least.

    `allocation="adaptive"` (`judging.studies.allocation`) serves only the comparisons of the
    checkpoints still in contention and stops at P(leader within delta of the best) >=
    `allocation_target`. It needs two checkpoints at least and every comparison given its full
    `raters_per_comparison` raters under the blindness rules; otherwise nothing is created (the
    error is raised before the caller commits).
    """
    checkpoint_ids = list(dict.fromkeys(checkpoint_ids))
    rater_ids = list(dict.fromkeys(rater_ids))
    if not name.strip():
        raise ConflictError("a study needs a name")
    if session.scalar(select(Study.id).where(Study.name == name)) is not None:
        raise ConflictError(f"a study named {name!r} already exists")
    if not checkpoint_ids:
        raise ConflictError("pick at least one checkpoint to judge")
    checkpoints = get_checkpoints(session, checkpoint_ids)
    reference_id = reference_checkpoint_id or base_checkpoint_of(session, checkpoints[0])
    if reference_id in checkpoint_ids:
        raise ConflictError("the reference cannot also be one of the judged checkpoints")
    get_checkpoints(session, [reference_id])
    prompt_set = session.get(PromptSet, prompt_set_id)
    if prompt_set is None:
        raise NotFoundError(f"prompt set {prompt_set_id} does not exist")
    if prompt_set.split != "heldout":
        raise ConflictError(
            f"prompt set {prompt_set.name!r} is a {prompt_set.split} set; use a held-out set"
        )
    check_raters(session, rater_ids)
    if len(rater_ids) < raters_per_comparison:
        raise ConflictError(
            f"{raters_per_comparison} raters per comparison need at least that many raters; "
            f"got {len(rater_ids)}"
        )
    if not 0 <= attention_check_rate <= 1:
        raise ConflictError("the attention-check rate must be within 0..1")
    _check_base_reuse(base_reuse, raters_per_comparison, len(rater_ids))
    adaptive.check_settings(allocation, allocation_target, len(checkpoint_ids))
    study = Study(
        name=name.strip(),
        reference_checkpoint_id=reference_id,
        prompt_set_id=prompt_set_id,
        raters_per_comparison=raters_per_comparison,
        attention_check_rate=attention_check_rate,
        seed=seed if seed is not None else random.SystemRandom().randrange(2**31),
        status="running",
        base_reuse=base_reuse,
        allocation=allocation,
        # A uniform study never stops early: its target is only the default, whatever was asked.
        allocation_target=(
            allocation_target if allocation == adaptive.ADAPTIVE else adaptive.DEFAULT_TARGET
        ),
    )
    session.add(study)
    session.flush()
    session.add_all(StudyRater(study_id=study.id, rater_id=r) for r in rater_ids)
    _extend(session, study, checkpoint_ids)
    if study.allocation == adaptive.ADAPTIVE:
        _check_full_raters(session, study, len(rater_ids))
        adaptive.start(session, study)
    return study


def _check_full_raters(session: Session, study: Study, raters: int) -> None:
    """An adaptive study serves a prompt for every contender at once and compares them on it:
    each comparison needs its full set of raters, none of whom has seen its texts."""
    short = session.scalar(
        select(func.count())
        .select_from(Comparison)
        .where(
            Comparison.study_id == study.id,
            Comparison.kind == "normal",
            Comparison.closed_reason == NO_UNSEEN_RATER,
        )
    )
    if short:
        raise ConflictError(
            f"too few raters for adaptive allocation: with {plural(raters, 'rater')}, "
            f"{plural(short or 0, 'comparison')} could not get {study.raters_per_comparison} "
            "raters who had not seen one of its texts (blind judging shows no text twice to a "
            "rater); add raters or lower the raters per comparison"
        )


def _check_base_reuse(reuse: int, per_comparison: int, raters: int) -> None:
    if reuse < 1:
        raise ConflictError("a base response must serve at least one comparison (base reuse >= 1)")
    if reuse * per_comparison > raters:
        raise ConflictError(
            f"sharing a base response among {reuse} comparisons with {per_comparison} raters "
            f"each needs {reuse * per_comparison} raters (no rater may see it twice); "
            f"got {raters}"
        )


def _extend(session: Session, study: Study, checkpoint_ids: Sequence[int]) -> int:
    """Add comparisons for these checkpoints and assign them; returns how many were created."""
    session.add_all(StudyCheckpoint(study_id=study.id, checkpoint_id=c) for c in checkpoint_ids)
    session.flush()
    rng = study_rng(study, f"extend:{','.join(map(str, checkpoint_ids))}")
    gens = first_generations(session, checkpoint_ids, study.prompt_set_id)
    paired = pair_normal(session, study, checkpoint_ids, rng)
    ranks = adaptive.prompt_ranks(session, study) if study.allocation == adaptive.ADAPTIVE else {}
    for comparison in paired:
        comparison.prompt_rank = ranks.get(comparison.prompt_id)
    session.add_all(paired)
    normal = [c for c in paired if c.auto_choice is None]
    attention = []
    spares = spare_samples(session, study, {c.prompt_id for c in normal})
    twins = plan.pick_attention(normal, study.attention_check_rate, rng)
    shown = {key for keys in comparison_keys(session, study.id).values() for key in keys}
    for index, twin in enumerate(twins):
        later = {t.prompt_id for t in twins[index + 1 :]}
        candidate = gens[(twin.checkpoint_id, twin.prompt_id)]
        built = attention_check(session, spares, twin, candidate, rng, later, shown)
        if built is None:
            continue  # no clean response on this prompt: better no check than an ambiguous one
        source, text, how = built
        shown.add(plan.text_key(text))
        attention.append(
            Comparison(
                study_id=study.id,
                prompt_id=twin.prompt_id,
                checkpoint_id=twin.checkpoint_id,
                kind="attention",
                candidate_generation_id=source.id,
                reference_generation_id=None,
                degraded_text=text,
                degradation=how,
                prompt_rank=ranks.get(twin.prompt_id),
            )
        )
    session.add_all(attention)
    session.flush()
    dropped = assign(session, study, normal + attention, rng)
    # Checks the rate asked for but nobody could get: said at creation and on the QC page.
    study.attention_checks_missing += len(twins) - len(attention) + dropped
    session.flush()
    _refresh_statistics(session)
    return len(paired) + len(attention) - dropped


_BULK_TABLES = ("studies", "comparisons", "assignments", "study_raters")


def _refresh_statistics(session: Session) -> None:
    """ANALYZE the tables a study's bulk insert just filled (PostgreSQL).

    Without statistics the planner takes a study's thousands of comparisons for a handful and
    reads all of them on every rater request (~17 ms a query for 2,800 comparisons, measured):
    autovacuum would ANALYZE within a minute or so, never where it is off. In the transaction,
    so the new rows count and a rollback takes the statistics back too.
    """
    if session.get_bind().dialect.name == "postgresql":
        for table in _BULK_TABLES:
            session.execute(text(f"ANALYZE {table}"))


def add_checkpoints(session: Session, study: Study, checkpoint_ids: Sequence[int]) -> int:
    """Judge more checkpoints in a running study; returns the number of new comparisons."""
    lock_study(session, study)  # one extension at a time: base samples are taken once each
    current = set(study_checkpoint_ids(session, study.id))
    new = [c for c in dict.fromkeys(checkpoint_ids) if c not in current]
    if not new:
        raise ConflictError("those checkpoints are already in the study")
    get_checkpoints(session, new)
    if study.reference_checkpoint_id in new:
        raise ConflictError("the reference cannot also be one of the judged checkpoints")
    created = _extend(session, study, new)
    # Adaptive: the new checkpoints join the contention (too few prompts judged to be out) and
    # their items beyond the frontier are parked; a decided study parks them all until resumed.
    adaptive.recompute(session, study, wait=True)
    return created


def add_rater(session: Session, study: Study, rater_id: int, *, actor_id: int | None = None) -> int:
    """Add a rater and give them a balanced share of unstarted work; returns items moved."""
    lock_study(session, study)
    check_raters(session, [rater_id])
    if rater_id in study_rater_ids(session, study.id):
        raise ConflictError("that rater is already in the study")
    session.add(StudyRater(study_id=study.id, rater_id=rater_id))
    session.flush()
    return rebalance(session, study, actor_id=actor_id)


def set_status(session: Session, study: Study, status: str) -> None:
    if status not in ("running", "closed"):
        raise ConflictError(f"a study can be running or closed, not {status!r}")
    study.status = status
    session.flush()
