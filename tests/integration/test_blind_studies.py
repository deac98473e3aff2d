"""Blind by construction: no rater meets a response text twice, the base side carries no
recurring signal, identical pairs are ties without a human, and missing base samples refuse."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data.models import Assignment, Comparison
from judging.errors import ConflictError
from judging.studies import qc, rating
from judging.studies import service as studies
from tests.judging_helpers import Lab, build_lab, checkpoint_side, judge_queue

CHECKPOINTS = 10
PROMPTS = 12


def _texts(checkpoints: int, prompts: int) -> dict[tuple[str, int], str]:
    """Distinct texts per response, so any repeat on screen comes from the study's design."""
    whos = ["base", *[f"base#{r}" for r in range(2, checkpoints + 1)]]
    whos += [str(10 * (c + 1)) for c in range(checkpoints)]
    return {
        (w, i): f"Answer {w}/{i}. Some words here. More words."
        for w in whos
        for i in range(prompts)
    }


def _serve_everything(session: Session, rater_id: int) -> list[tuple[str, str, bool, int]]:
    """Judge the whole queue as the web page does; (left, right, checkpoint on left, position)."""
    served = []
    while (state := rating.queue_state(session, rater_id)).item is not None:
        item = state.item
        assignment = session.scalar(
            select(Assignment).where(Assignment.public_id == item.public_id)
        )
        assert assignment is not None
        served.append((item.left, item.right, assignment.checkpoint_side == "left", len(served)))
        rating.record_judgement(
            session,
            rater_id=rater_id,
            public_id=item.public_id,
            choice="tie",
            rationale=None,
            idempotency_key=item.idempotency_key,
        )
    return served


def _ten_checkpoint_lab(session: Session, tmp_path: Path) -> Lab:
    steps = tuple(10 * (c + 1) for c in range(CHECKPOINTS))
    return build_lab(
        session, tmp_path, prompts=PROMPTS, steps=steps, texts=_texts(CHECKPOINTS, PROMPTS)
    )


def test_ten_checkpoints_two_raters_no_text_twice(db_session: Session, tmp_path: Path) -> None:
    lab = _ten_checkpoint_lab(db_session, tmp_path)
    alice, bob = lab.raters
    studies.create_study(
        db_session,
        name="blind10",
        checkpoint_ids=[c.id for c in lab.trained],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[alice.id, bob.id],
        attention_check_rate=0.0,
        seed=5,
    )
    for rater in (alice, bob):
        served = _serve_everything(db_session, rater.id)
        assert len(served) == CHECKPOINTS * PROMPTS
        texts = Counter(t for left, right, _, _ in served for t in (left, right))
        # Every response text on screen exactly once: the base side cannot be recognised.
        assert max(texts.values()) == 1
        # Sides: a fair coin per item, so the checkpoint's side predicts nothing (4 sigma bound).
        n = len(served)
        lefts = sum(on_left for _, _, on_left, _ in served)
        assert abs(lefts - n / 2) <= 4 * math.sqrt(n / 4)
        # Position: the checkpoint is not on one side early and the other late.
        early = sum(on_left for _, _, on_left, pos in served if pos < n // 2)
        late = lefts - early
        assert abs(early - late) <= 4 * math.sqrt(n / 4)


def test_missing_base_samples_refuse_with_the_command(db_session: Session, tmp_path: Path) -> None:
    lab = build_lab(db_session, tmp_path, prompts=3, steps=(10, 20, 30), base_samples=1)
    with pytest.raises(ConflictError) as info:
        studies.create_study(
            db_session,
            name="short",
            checkpoint_ids=[c.id for c in lab.trained],
            prompt_set_id=lab.prompt_set_id,
            rater_ids=[r.id for r in lab.raters],
            attention_check_rate=0.0,
        )
    message = str(info.value)
    assert "missing 6 base sample(s) on 3 prompt(s)" in message
    assert f"rlhf evaluate --checkpoint {lab.base.id}" in message and "--replicates 4" in message


def test_base_sample_on_a_checkpoint_seed_is_never_used(
    db_session: Session, tmp_path: Path
) -> None:
    # Two base samples per prompt, one on the checkpoints' seed (0): only one usable, one missing.
    lab = build_lab(db_session, tmp_path, prompts=2, steps=(10, 20), base_samples=2)
    from judging.data.models import Generation

    for g in db_session.scalars(
        select(Generation).where(Generation.checkpoint_id == lab.base.id, Generation.replicate == 2)
    ):
        g.seed = 0
    db_session.flush()
    with pytest.raises(ConflictError, match="missing 2 base sample"):
        studies.create_study(
            db_session,
            name="seeded",
            checkpoint_ids=[c.id for c in lab.trained],
            prompt_set_id=lab.prompt_set_id,
            rater_ids=[r.id for r in lab.raters],
        )


def test_identical_pair_is_a_tie_without_a_human(db_session: Session, tmp_path: Path) -> None:
    same = "Exactly the same words on both sides."
    lab = build_lab(
        db_session, tmp_path, prompts=3, steps=(10,), texts={("base", 0): same, ("10", 0): same}
    )
    study = studies.create_study(
        db_session,
        name="ident",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters],
        attention_check_rate=0.0,
    )
    comparison = db_session.scalars(
        select(Comparison).where(
            Comparison.study_id == study.id, Comparison.prompt_id == lab.prompt_ids[0]
        )
    ).one()
    assert comparison.auto_choice == "tie" and "identical" in (comparison.closed_reason or "")
    assert not db_session.scalars(
        select(Assignment).where(Assignment.comparison_id == comparison.id)
    ).all()
    for rater in lab.raters:
        judge_queue(db_session, rater.id, checkpoint_side)  # the checkpoint wins every item
    report = qc.study_qc(db_session, study)
    (checkpoint,) = report.checkpoints
    # 2 prompts won by both raters, 1 prompt tied by construction: (4 + 2 * 0.5) / 6.
    assert checkpoint.outcomes.get("tie") == 2
    assert checkpoint.win_rate == pytest.approx(5 / 6)
    assert checkpoint.missing_prompts == []


def test_added_checkpoint_gets_unused_base_samples(db_session: Session, tmp_path: Path) -> None:
    lab = build_lab(db_session, tmp_path, prompts=3, steps=(10, 20), base_samples=2)
    first, second = lab.trained
    study = studies.create_study(
        db_session,
        name="grow",
        checkpoint_ids=[first.id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters],
        attention_check_rate=0.0,
    )
    studies.add_checkpoints(db_session, study, [second.id])
    refs = db_session.scalars(
        select(Comparison.reference_generation_id).where(Comparison.study_id == study.id)
    ).all()
    assert len(refs) == 6 and len(set(refs)) == 6  # every comparison its own base sample
    for rater in lab.raters:
        served = _serve_everything(db_session, rater.id)
        texts = Counter(t for left, right, _, _ in served for t in (left, right))
        assert len(served) == 6 and max(texts.values()) == 1
    third = build_lab(
        db_session, tmp_path, prompts=2, steps=(10, 20), base_samples=1, run_name="short", raters=()
    )
    other = studies.create_study(
        db_session,
        name="short",
        checkpoint_ids=[third.trained[0].id],
        prompt_set_id=third.prompt_set_id,
        rater_ids=[r.id for r in lab.raters],
        attention_check_rate=0.0,
    )
    with pytest.raises(ConflictError, match="missing 2 base sample"):
        studies.add_checkpoints(db_session, other, [third.trained[1].id])


def test_shared_base_responses_go_to_disjoint_raters(db_session: Session, tmp_path: Path) -> None:
    """Ten checkpoints on base samples shared by three comparisons each: four base samples per
    prompt instead of ten, every comparison still gets its two raters, and no rater meets any
    text twice (so nobody sees one base answer opposite two checkpoints)."""
    raters = tuple(f"rater{i}" for i in range(12))
    steps = tuple(10 * (c + 1) for c in range(CHECKPOINTS))
    lab = build_lab(
        db_session,
        tmp_path,
        prompts=PROMPTS,
        steps=steps,
        raters=raters,
        texts=_texts(CHECKPOINTS, PROMPTS),
        base_samples=4,
    )
    study = studies.create_study(
        db_session,
        name="shared-base",
        checkpoint_ids=[c.id for c in lab.trained],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters],
        attention_check_rate=0.0,
        seed=7,
        base_reuse=3,
    )
    comparisons = list(
        db_session.scalars(select(Comparison).where(Comparison.study_id == study.id))
    )
    assert len(comparisons) == CHECKPOINTS * PROMPTS
    uses = Counter(c.reference_generation_id for c in comparisons)
    assert max(uses.values()) == 3 and len(uses) == PROMPTS * 4  # ceil(10 / 3) per prompt
    for rater in lab.raters:
        served = _serve_everything(db_session, rater.id)
        texts = Counter(t for left, right, _, _ in served for t in (left, right))
        assert served and max(texts.values()) == 1
    per = Counter(a.comparison_id for a in db_session.scalars(select(Assignment)))
    assert {per[c.id] for c in comparisons} == {2}


def test_base_reuse_needs_enough_raters(db_session: Session, tmp_path: Path) -> None:
    lab = build_lab(db_session, tmp_path, prompts=2, steps=(10, 20, 30), base_samples=1)
    with pytest.raises(ConflictError, match=r"needs 6 raters .* got 2"):
        studies.create_study(
            db_session,
            name="too-few",
            checkpoint_ids=[c.id for c in lab.trained],
            prompt_set_id=lab.prompt_set_id,
            rater_ids=[r.id for r in lab.raters],
            base_reuse=3,
        )
