"""The database itself refuses duplicates and invalid values, whatever the code above it does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from judging.data import registry
from judging.data.models import (
    Assignment,
    Checkpoint,
    Comparison,
    Generation,
    Judgement,
    Prompt,
    PromptSet,
    Rater,
    Study,
)


def _expect_refusal(session: Session, make: Callable[[], object]) -> None:
    savepoint = session.begin_nested()
    session.add(make())
    with pytest.raises(IntegrityError):
        session.flush()
    savepoint.rollback()


@pytest.fixture
def assignment(db_session: Session, tmp_path: Path) -> Assignment:
    run = registry.start_run(db_session, name="r", algorithm="ppo", base_model="base", config={})
    base = registry.ensure_base_checkpoint(db_session, run)
    (tmp_path / "ck").mkdir()
    ckpt = registry.register_checkpoint(db_session, run_id=run.id, step=5, path=tmp_path / "ck")
    pset = PromptSet(name="held", split="heldout")
    db_session.add(pset)
    db_session.flush()
    prompt = Prompt(prompt_set_id=pset.id, position=0, external_id="p0", text="Hi?", text_hash="h")
    db_session.add(prompt)
    db_session.flush()
    gens = [
        Generation(
            checkpoint_id=c.id,
            prompt_id=prompt.id,
            text="t",
            token_count=1,
            finish_reason="stop",
            backend="import",
        )
        for c in (base, ckpt)
    ]
    rater = Rater(name="ann", token_hash="x" * 64)
    db_session.add_all([*gens, rater])
    db_session.flush()
    study = Study(name="s", reference_checkpoint_id=base.id, prompt_set_id=pset.id)
    db_session.add(study)
    db_session.flush()
    comparison = Comparison(
        study_id=study.id,
        prompt_id=prompt.id,
        checkpoint_id=ckpt.id,
        candidate_generation_id=gens[1].id,
        reference_generation_id=gens[0].id,
    )
    db_session.add(comparison)
    db_session.flush()
    item = Assignment(
        public_id="pub-1",
        comparison_id=comparison.id,
        study_id=study.id,
        rater_id=rater.id,
        checkpoint_side="left",
        position=0,
    )
    db_session.add(item)
    db_session.flush()
    return item


def test_second_judgement_for_one_assignment_is_refused(
    db_session: Session, assignment: Assignment
) -> None:
    db_session.add(Judgement(assignment_id=assignment.id, choice="left", idempotency_key="k1"))
    db_session.flush()
    _expect_refusal(
        db_session,
        lambda: Judgement(assignment_id=assignment.id, choice="right", idempotency_key="k2"),
    )


def test_reused_idempotency_key_is_refused(db_session: Session, assignment: Assignment) -> None:
    db_session.add(Judgement(assignment_id=assignment.id, choice="tie", idempotency_key="same"))
    db_session.flush()
    other = Assignment(
        public_id="pub-2",
        comparison_id=assignment.comparison_id,
        study_id=assignment.study_id,
        rater_id=assignment.rater_id,
        checkpoint_side="right",
        position=1,
    )
    # Same comparison and rater twice is itself refused ...
    _expect_refusal(db_session, lambda: other)
    # ... and so is a second judgement carrying an already used key.
    _expect_refusal(
        db_session,
        lambda: Judgement(assignment_id=assignment.id, choice="tie", idempotency_key="same"),
    )


def test_invalid_choice_is_refused(db_session: Session, assignment: Assignment) -> None:
    _expect_refusal(
        db_session,
        lambda: Judgement(assignment_id=assignment.id, choice="maybe", idempotency_key="k"),
    )


def test_checkpoint_unique_per_run_and_step(db_session: Session, assignment: Assignment) -> None:
    run_id = assignment.comparison.checkpoint.run_id
    _expect_refusal(db_session, lambda: Checkpoint(run_id=run_id, step=5, path="elsewhere"))


def test_an_assignment_in_another_study_than_its_comparison_is_refused(
    db_session: Session, assignment: Assignment
) -> None:
    """The rater's queue is read by the assignment's study_id; the composite key keeps it equal
    to the comparison's study."""
    comparison = db_session.get(Comparison, assignment.comparison_id)
    assert comparison is not None
    other = Study(
        name="other",
        reference_checkpoint_id=comparison.checkpoint_id,
        prompt_set_id=db_session.get(Study, assignment.study_id).prompt_set_id,  # type: ignore[union-attr]
    )
    db_session.add(other)
    db_session.flush()
    rater = Rater(name="bea", token_hash="y" * 64)
    db_session.add(rater)
    db_session.flush()
    _expect_refusal(
        db_session,
        lambda: Assignment(
            public_id="pub-3",
            comparison_id=assignment.comparison_id,
            study_id=other.id,
            rater_id=rater.id,
            checkpoint_side="left",
            position=0,
        ),
    )
