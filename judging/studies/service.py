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

from sqlalchemy import case, func, select, text, update
from sqlalchemy.orm import Session, aliased

from judging.data.models import (
    Assignment,
    Checkpoint,
    Comparison,
    Evaluation,
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
from judging.studies import allocation as adaptive
from judging.studies import assignment as plan
from judging.studies import attention, audit
from judging.studies.rating import comparison_texts

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
            f"too few raters for adaptive allocation: with {_plural(raters, 'rater')}, "
            f"{_plural(short or 0, 'comparison')} could not get {study.raters_per_comparison} "
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


def base_samples_needed(checkpoints: int, reuse: int) -> int:
    """Base responses per prompt that a study of `checkpoints` judged checkpoints uses."""
    return -(-checkpoints // max(reuse, 1))


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


def _base_samples(
    session: Session, study: Study, prompt_ids: Sequence[int]
) -> dict[int, list[plan.Sample]]:
    """prompt -> the reference's responses not yet used by a comparison of this study."""
    used = set(
        session.scalars(
            select(Comparison.reference_generation_id).where(
                Comparison.study_id == study.id, Comparison.reference_generation_id.is_not(None)
            )
        )
    )
    rows = session.scalars(
        select(Generation)
        .where(
            Generation.checkpoint_id == study.reference_checkpoint_id,
            Generation.prompt_id.in_(list(prompt_ids)),
        )
        .order_by(Generation.prompt_id, Generation.replicate, Generation.seed)
    )
    out: dict[int, list[plan.Sample]] = defaultdict(list)
    for g in rows:
        if g.id not in used:
            out[g.prompt_id].append(plan.Sample(g.id, g.seed, g.text))
    return out


def _study_seeds(session: Session, study_id: int) -> dict[int, set[int]]:
    """prompt -> the seeds of every response already in the study (either side)."""
    out: dict[int, set[int]] = defaultdict(set)
    for column in (Comparison.candidate_generation_id, Comparison.reference_generation_id):
        rows = session.execute(
            select(Comparison.prompt_id, Generation.seed)
            .join(Generation, Generation.id == column)
            .where(Comparison.study_id == study_id)
        )
        for prompt_id, seed in rows:
            out[prompt_id].add(seed)
    return out


def _missing_base_message(
    session: Session, study: Study, missing: int, prompts: int, needed: int
) -> str:
    ref = _checkpoints(session, [study.reference_checkpoint_id])[0]
    prompt_set = session.get(PromptSet, study.prompt_set_id)
    set_name = prompt_set.name if prompt_set else str(study.prompt_set_id)
    own = (
        "its own base response"
        if study.base_reuse == 1
        else f"a base response shared by at most {study.base_reuse} comparisons"
    )
    return (
        f"blind judging pairs every checkpoint with {own}: the reference "
        f"{ref.label} is missing {missing} base sample(s) on {prompts} prompt(s) "
        f"({needed} per prompt needed, on seeds no judged checkpoint used); create them with "
        f"`rlhf evaluate --checkpoint {ref.id} --prompt-set {set_name} --replicates {needed + 1}`"
    )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def attention_warning(session: Session, study: Study) -> str | None:
    """Why the study has fewer attention checks than its rate asks for, and how to fix that;
    None when it has them all.

    A check's right answer is a response no rater of the check meets elsewhere in the study: a
    spare base sample (one no comparison uses), or the checkpoint's own response for a rater who
    does not judge that item. With as many raters as verdicts per comparison everyone judges
    every item, so only spare base samples can make checks.
    """
    missing = study.attention_checks_missing
    if not missing:
        return None
    built = (
        session.scalar(
            select(func.count())
            .select_from(Comparison)
            .where(Comparison.study_id == study.id, Comparison.kind == "attention")
        )
        or 0
    )
    head = (
        "no attention checks"
        if not built
        else f"only {built} of {built + missing} attention checks"
    )
    raters, per = len(study_rater_ids(session, study.id)), study.raters_per_comparison
    why = (
        f"with {_plural(raters, 'rater')} for {per} verdicts per comparison every rater judges "
        "every item, so a check cannot reuse a judged response"
        if raters <= per
        else "a check needs a clean response its raters meet nowhere else"
    )
    ref = _checkpoints(session, [study.reference_checkpoint_id])[0]
    prompt_set = session.get(PromptSet, study.prompt_set_id)
    set_name = prompt_set.name if prompt_set else str(study.prompt_set_id)
    return (
        f"{head}: {why}, and the reference {ref.label} has no spare base sample (one no "
        f"comparison uses) on the prompts picked for them. {_plural(missing, 'spare base sample')}"
        f" needed, one per check; create them with `rlhf evaluate --checkpoint {ref.id} "
        f"--prompt-set {set_name} --replicates {_replicates_for_spares(session, study, missing)}`"
        " before creating a study (this one keeps the checks it has)"
    )


def _replicates_for_spares(session: Session, study: Study, missing: int) -> int:
    """Base responses per prompt that leave a spare on every checked prompt: replicate 0 (the
    shared seed), one per judged checkpoint, and the spares on top."""
    evaluated = session.scalar(
        select(Evaluation.replicates).where(
            Evaluation.checkpoint_id == study.reference_checkpoint_id,
            Evaluation.prompt_set_id == study.prompt_set_id,
        )
    )
    judged = len(study_checkpoint_ids(session, study.id))
    in_use = max(evaluated or 0, base_samples_needed(judged, study.base_reuse) + 1)
    prompts = session.scalar(
        select(func.count()).select_from(Prompt).where(Prompt.prompt_set_id == study.prompt_set_id)
    )
    return in_use + -(-missing // max(prompts or 1, 1))


IDENTICAL = "identical texts on both sides: recorded as a tie without asking anyone"


def _pair_normal(
    session: Session, study: Study, checkpoint_ids: Sequence[int], rng: random.Random
) -> list[Comparison]:
    """One comparison per (checkpoint, prompt), each against its own independent base sample."""
    gens = _generations(session, checkpoint_ids, study.prompt_set_id)
    prompts = session.scalars(
        select(Prompt.id)
        .where(Prompt.prompt_set_id == study.prompt_set_id)
        .order_by(Prompt.position)
    ).all()
    base = _base_samples(session, study, prompts)
    seeds = _study_seeds(session, study.id)
    comparisons: list[Comparison] = []
    missing = short_prompts = 0
    for p in prompts:
        candidates = {
            c: plan.Sample(gens[(c, p)].id, gens[(c, p)].seed, gens[(c, p)].text)
            for c in checkpoint_ids
            if (c, p) in gens
        }
        if not candidates:
            continue
        pairing, lacking = plan.pair_with_base(
            candidates, base.get(p, []), rng, seeds[p], reuse=study.base_reuse
        )
        if lacking:
            missing, short_prompts = missing + lacking, short_prompts + 1
            continue
        for c, sample in candidates.items():
            ref = pairing[c]
            identical = plan.same_text(sample.text, ref.text)
            comparisons.append(
                Comparison(
                    study_id=study.id,
                    prompt_id=p,
                    checkpoint_id=c,
                    kind="normal",
                    candidate_generation_id=sample.id,
                    reference_generation_id=ref.id,
                    auto_choice="tie" if identical else None,
                    closed_reason=IDENTICAL if identical else None,
                )
            )
    if missing:
        judged = len(study_checkpoint_ids(session, study.id))
        needed = base_samples_needed(judged, study.base_reuse)
        raise ConflictError(_missing_base_message(session, study, missing, short_prompts, needed))
    return comparisons


def _extend(session: Session, study: Study, checkpoint_ids: Sequence[int]) -> int:
    """Add comparisons for these checkpoints and assign them; returns how many were created."""
    session.add_all(StudyCheckpoint(study_id=study.id, checkpoint_id=c) for c in checkpoint_ids)
    session.flush()
    rng = _rng(study, f"extend:{','.join(map(str, checkpoint_ids))}")
    gens = _generations(session, checkpoint_ids, study.prompt_set_id)
    paired = _pair_normal(session, study, checkpoint_ids, rng)
    ranks = adaptive.prompt_ranks(session, study) if study.allocation == adaptive.ADAPTIVE else {}
    for comparison in paired:
        comparison.prompt_rank = ranks.get(comparison.prompt_id)
    session.add_all(paired)
    normal = [c for c in paired if c.auto_choice is None]
    attention = []
    spares = _spare_samples(session, study, {c.prompt_id for c in normal})
    twins = plan.pick_attention(normal, study.attention_check_rate, rng)
    shown = {key for keys in comparison_keys(session, study.id).values() for key in keys}
    for index, twin in enumerate(twins):
        later = {t.prompt_id for t in twins[index + 1 :]}
        candidate = gens[(twin.checkpoint_id, twin.prompt_id)]
        built = _attention_check(session, spares, twin, candidate, rng, later, shown)
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
    dropped = _assign(session, study, normal + attention, rng)
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


def _spare_samples(
    session: Session, study: Study, prompt_ids: set[int]
) -> dict[int, list[plan.Sample]]:
    """prompt -> reference responses no comparison shows, with texts shown nowhere in the study."""
    session.flush()
    shown = {key for keys in _seen(session, study.id).values() for key in keys}
    for comparison in session.scalars(select(Comparison).where(Comparison.study_id == study.id)):
        shown |= _shown(session, comparison)
    spares = _base_samples(session, study, sorted(prompt_ids))
    return {
        p: [s for s in samples if plan.text_key(s.text) not in shown]
        for p, samples in spares.items()
    }


def _clean(session: Session, sample: plan.Sample) -> bool:
    generation = session.get(Generation, sample.id)
    return generation is not None and attention.is_clean(generation.text, generation.finish_reason)


def _attention_check(
    session: Session,
    spares: dict[int, list[plan.Sample]],
    twin: Comparison,
    candidate: Generation,
    rng: random.Random,
    reserved: set[int] | frozenset[int] = frozenset(),
    shown: set[str] | frozenset[str] = frozenset(),
) -> tuple[plan.Sample, str, str] | None:
    """(clean response, its worse counterpart, how) for one check, or None without a clean one.

    The right answer must be unambiguous, so the good side is a clean response (see
    judging.studies.attention.is_clean): an unused base sample first (a copy of a real item's
    text would show a rater that text twice, so such a check can only go to raters who do not
    judge the item), the checkpoint's own response only if it is clean (a collapsed output
    against its own degraded copy is "both bad"). The worse side is a clean unused response to
    another prompt (off topic) or a cut/scrambled copy that keeps the response's formatting.
    `reserved`: prompts of the checks still to build (their spares are not used as decoys);
    `shown`: texts of the study the worse side must not repeat.
    """
    pool = [s for s in spares.get(twin.prompt_id, []) if _clean(session, s)]
    if pool:
        source = pool[-1]
        spares[twin.prompt_id].remove(source)
    elif attention.is_clean(candidate.text, candidate.finish_reason):
        source = plan.Sample(candidate.id, candidate.seed, candidate.text)
    else:
        return None
    decoys = [(p, s) for p, samples in spares.items() if p != twin.prompt_id for s in samples]
    decoys = [(p, s) for p, s in decoys if _clean(session, s)]
    # A decoy uses up its prompt's spare sample: take it from a prompt no later check needs,
    # or that check falls back to a copy of a judged text, which its raters must not see.
    free = [(p, s) for p, s in decoys if p not in reserved]
    decoys = free or decoys
    decoy = rng.choice(decoys) if decoys else None
    try:
        text, how = attention.degrade(
            source.text, rng, decoy=decoy[1].text if decoy else None, avoid=shown
        )
    except ConflictError:
        return None
    if how == "off_topic" and decoy is not None:
        spares[decoy[0]].remove(decoy[1])  # shown here, so never again elsewhere
    return source, text, how


def _loads(session: Session, study_id: int) -> Counter[int]:
    rows = session.execute(
        select(Assignment.rater_id, func.count())
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study_id)
        .group_by(Assignment.rater_id)
    )
    return Counter(dict(rows.all()))


def _shown(session: Session, comparison: Comparison) -> frozenset[str]:
    """Keys of the texts a rater sees on this comparison."""
    return frozenset(plan.text_key(t) for t in comparison_texts(session, comparison))


def comparison_keys(session: Session, study_id: int) -> dict[int, frozenset[str]]:
    """comparison -> keys of the texts a rater sees on it (as `_shown`), for the whole study in
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


def _seen(session: Session, study_id: int) -> dict[int, set[str]]:
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


def _assign(
    session: Session, study: Study, comparisons: list[Comparison], rng: random.Random
) -> int:
    """Give the comparisons their raters; returns how many attention checks were dropped."""
    raters = study_rater_ids(session, study.id)
    texts = {c.id: _shown(session, c) for c in comparisons}
    seen, load = _seen(session, study.id), _loads(session, study.id)
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
    lock_study(session, study)  # one extension at a time: base samples are taken once each
    current = set(study_checkpoint_ids(session, study.id))
    new = [c for c in dict.fromkeys(checkpoint_ids) if c not in current]
    if not new:
        raise ConflictError("those checkpoints are already in the study")
    _checkpoints(session, new)
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
    _check_raters(session, [rater_id])
    if rater_id in study_rater_ids(session, study.id):
        raise ConflictError("that rater is already in the study")
    session.add(StudyRater(study_id=study.id, rater_id=rater_id))
    session.flush()
    return rebalance(session, study, actor_id=actor_id)


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
    seen = _seen(session, study_id)
    for comparison_id in list(blocked):
        comparison = session.get(Comparison, comparison_id)
        assert comparison is not None
        texts = _shown(session, comparison)
        blocked[comparison_id] |= {r for r, keys in seen.items() if keys & texts}
    return blocked


def _live_rows(session: Session, study_id: int) -> list[tuple[Assignment, int]]:
    """The study's assignments, re-read after the lock; handed-back ones do not count."""
    session.expire_all()
    return [(a, p) for a, p in _study_assignments(session, study_id) if a.status != "released"]


def rebalance(session: Session, study: Study, *, actor_id: int | None = None) -> int:
    """Move unstarted assignments until rater loads differ by at most one."""
    lock_study(session, study)
    rows = _live_rows(session, study.id)
    movable = [plan.Movable(a.id, a.comparison_id, a.rater_id) for a, _ in rows if not _started(a)]
    load = Counter(a.rater_id for a, _ in rows)
    raters = study_rater_ids(session, study.id)
    rng = _rng(study, f"rebalance:{len(rows)}:{len(raters)}")
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
    rng = _rng(study, f"handover:{rater_id}:{len(rows)}")
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


def set_status(session: Session, study: Study, status: str) -> None:
    if status not in ("running", "closed"):
        raise ConflictError(f"a study can be running or closed, not {status!r}")
    study.status = status
    session.flush()
