"""Which responses a study compares: each checkpoint's against a base sample of the
reference, and attention checks built from clean responses."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from judging.data.models import (
    Checkpoint,
    Comparison,
    Evaluation,
    Generation,
    Prompt,
    PromptSet,
    Study,
)
from judging.errors import ConflictError, NotFoundError
from judging.studies import assignment as plan
from judging.studies import attention
from judging.studies.lookups import get_checkpoints, study_checkpoint_ids, study_rater_ids
from judging.studies.queues import seen_texts, shown_texts


def base_samples_needed(checkpoints: int, reuse: int) -> int:
    """Base responses per prompt that a study of `checkpoints` judged checkpoints uses."""
    return -(-checkpoints // max(reuse, 1))


def base_checkpoint_of(session: Session, checkpoint: Checkpoint) -> int:
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


def first_generations(
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
    ref = get_checkpoints(session, [study.reference_checkpoint_id])[0]
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


def plural(count: int, word: str) -> str:
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
        f"with {plural(raters, 'rater')} for {per} verdicts per comparison every rater judges "
        "every item, so a check cannot reuse a judged response"
        if raters <= per
        else "a check needs a clean response its raters meet nowhere else"
    )
    ref = get_checkpoints(session, [study.reference_checkpoint_id])[0]
    prompt_set = session.get(PromptSet, study.prompt_set_id)
    set_name = prompt_set.name if prompt_set else str(study.prompt_set_id)
    return (
        f"{head}: {why}, and the reference {ref.label} has no spare base sample (one no "
        f"comparison uses) on the prompts picked for them. {plural(missing, 'spare base sample')}"
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


def pair_normal(
    session: Session, study: Study, checkpoint_ids: Sequence[int], rng: random.Random
) -> list[Comparison]:
    """One comparison per (checkpoint, prompt), each against its own independent base sample."""
    gens = first_generations(session, checkpoint_ids, study.prompt_set_id)
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


def spare_samples(
    session: Session, study: Study, prompt_ids: set[int]
) -> dict[int, list[plan.Sample]]:
    """prompt -> reference responses no comparison shows, with texts shown nowhere in the study."""
    session.flush()
    shown = {key for keys in seen_texts(session, study.id).values() for key in keys}
    for comparison in session.scalars(select(Comparison).where(Comparison.study_id == study.id)):
        shown |= shown_texts(session, comparison)
    spares = _base_samples(session, study, sorted(prompt_ids))
    return {
        p: [s for s in samples if plan.text_key(s.text) not in shown]
        for p, samples in spares.items()
    }


def _clean(session: Session, sample: plan.Sample) -> bool:
    generation = session.get(Generation, sample.id)
    return generation is not None and attention.is_clean(generation.text, generation.finish_reason)


def attention_check(
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
