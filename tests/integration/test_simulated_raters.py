"""Simulated raters through the real HTTP API of a live uvicorn on loopback."""

from __future__ import annotations

import random
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data.models import Assignment, Comparison, Generation, Judgement
from judging.gold import RaterSpec, p_left
from judging.stats.agreement import winner as resolve_winner
from judging.studies.raters import invite_rater
from judging.studies.service import create_study
from judging.studies.simulated import parse_item, run_raters, sim_rater_name, text_key
from tests.e2e.conftest import committed_session, live_server  # noqa: F401  (fixtures)
from tests.judging_helpers import build_lab


def _tag(i: int) -> str:
    """Letters only: text_key() ignores digits, so each text needs its own letter word."""
    return "".join(chr(97 + int(d)) for d in f"{i:03d}")


def _lab(session: Session, tmp_path: Path, prompts: int, steps: tuple[int, ...]):  # type: ignore[no-untyped-def]
    # A blind study draws base samples independently per checkpoint: build_lab stores one base
    # replicate per checkpoint, each its own text ("base#r" for r > 1) with its own gold score.
    replicates = [f"base#{r}" for r in range(2, len(steps) + 1)]
    whos = ["base", *[str(s) for s in steps], *replicates]
    texts = {
        (who, i): f"Response {_tag(n)} to item {_tag(i)}. It ends properly."
        for n, who in enumerate(whos)
        for i in range(prompts)
    }
    lab = build_lab(session, tmp_path, prompts=prompts, steps=steps, raters=(), texts=texts)
    rng = random.Random(7)
    gold = {text_key(t): rng.uniform(0.0, 0.6) for t in texts.values()}
    return lab, gold


def _expected_agreement(
    session: Session, study_id: int, gold: dict[str, float], spec: RaterSpec
) -> float:
    """Mean over comparisons of P(two independent raters agree), sides as actually drawn."""
    rows = session.execute(
        select(Assignment.comparison_id, Assignment.checkpoint_side, Comparison)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study_id, Comparison.kind == "normal")
    ).all()
    text = {g.id: g.text for g in session.scalars(select(Generation))}
    by_comparison: dict[int, list[float]] = {}
    for cid, side, comp in rows:
        mine, ref = (
            gold[text_key(text[comp.candidate_generation_id])],
            gold[text_key(text[comp.reference_generation_id])],
        )
        left, right = (mine, ref) if side == "left" else (ref, mine)
        p = p_left(left, right, spec)
        # P(rater prefers the candidate) with this rater's sides
        by_comparison.setdefault(cid, []).append(p if side == "left" else 1 - p)
    agree = [
        a * b + (1 - a) * (1 - b) for a, b in (v[:2] for v in by_comparison.values() if len(v) >= 2)
    ]
    return sum(agree) / len(agree)


def test_simulated_raters_fill_a_study_over_http(
    live_server: str,  # noqa: F811
    committed_session: Session,  # noqa: F811
    tmp_path: Path,
) -> None:
    session = committed_session
    lab, gold = _lab(session, tmp_path, prompts=30, steps=(10, 20, 30))
    tokens = {}
    rater_ids = []
    for index in (1, 2, 3):
        rater, token = invite_rater(session, name=sim_rater_name(0, index))
        tokens[rater.name] = token
        rater_ids.append(rater.id)
    study = create_study(
        session,
        name="simulated",
        checkpoint_ids=[c.id for c in lab.trained],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=rater_ids,
        raters_per_comparison=2,
        attention_check_rate=0.0,
        seed=1,
    )
    session.commit()
    spec = RaterSpec(temperature=0.08, position_bias=0.2)

    def score(prompt: str, response: str) -> float:
        return gold[text_key(response)]

    result = run_raters(live_server, tokens, score, spec, seed=3)

    session.expire_all()
    assignments = session.scalars(
        select(Assignment).join(Comparison).where(Comparison.study_id == study.id)
    ).all()
    assert result.total == len(assignments) == 180  # 30 prompts x 3 checkpoints x 2 raters
    assert all(a.status == "done" for a in assignments)
    verdicts = session.scalars(select(Judgement)).all()
    assert len(verdicts) == 180
    # The raters follow the gold preference: the higher-gold side wins most verdicts.
    by_assignment = {a.id: a for a in assignments}
    text = {g.id: g.text for g in session.scalars(select(Generation))}
    agree_gold = 0
    for j in verdicts:
        a = by_assignment[j.assignment_id]
        comp = session.get(Comparison, a.comparison_id)
        assert comp is not None
        mine = gold[text_key(text[comp.candidate_generation_id])]
        ref = gold[text_key(text[comp.reference_generation_id])]
        winner = resolve_winner(j.choice, a.checkpoint_side)
        agree_gold += (winner == "checkpoint") == (mine > ref)
    assert agree_gold / 180 > 0.7
    # Agreement between raters is what the noise model predicts (about 0.05 standard error).
    labels: dict[int, list[str]] = {}
    for j in verdicts:
        a = by_assignment[j.assignment_id]
        labels.setdefault(a.comparison_id, []).append(resolve_winner(j.choice, a.checkpoint_side))
    observed = sum(v[0] == v[1] for v in labels.values()) / len(labels)
    expected = _expected_agreement(session, study.id, gold, spec)
    assert abs(observed - expected) < 0.15, (observed, expected)
    # Nothing is left for them: the queue page shows no item any more.
    assert parse_item("<html></html>") is None


def test_simulated_raters_stop_when_an_adaptive_study_is_decided(
    live_server: str,  # noqa: F811
    committed_session: Session,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The simulated raters just keep asking until nothing is served: an adaptive study stops
    serving once decided, before its budget, and every verdict they gave is stored."""
    from judging.data.models import Study
    from judging.studies import allocation

    session = committed_session
    prompts = 60
    lab, gold = _lab(session, tmp_path, prompts=prompts, steps=(10, 20, 30))
    # Gold by who wrote the text: step 10 clearly better than the base (random, at most 0.6),
    # step 20 about as good, step 30 clearly worse.
    level = {"10": 0.9, "20": 0.3, "30": 0.0}
    for (who, i), text in _texts_by_who(session, lab).items():
        gold[text_key(text)] = level[who] + 0.001 * (i % 7)
    tokens, rater_ids = {}, []
    for index in (1, 2, 3):
        rater, token = invite_rater(session, name=sim_rater_name(1, index))
        tokens[rater.name] = token
        rater_ids.append(rater.id)
    study = create_study(
        session,
        name="simulated-adaptive",
        checkpoint_ids=[c.id for c in lab.trained],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=rater_ids,
        attention_check_rate=0.0,
        seed=1,
        allocation="adaptive",
    )
    session.commit()
    budget = allocation.budget(session, study)
    assert budget == prompts * 3 * 2

    result = run_raters(
        live_server, tokens, lambda _p, r: gold[text_key(r)], RaterSpec(temperature=0.05), seed=3
    )

    session.expire_all()
    decided = session.get(Study, study.id)
    assert decided is not None and decided.decided_at is not None
    assert decided.decided_after is not None
    verdicts = session.scalars(
        select(Judgement).join(Assignment).where(Assignment.study_id == study.id)
    ).all()
    # Raters who had an item on screen when it stopped still gave (and kept) their verdict. The
    # first look is at 30 of the 60 prompts (half the budget): decided by the second, at 40.
    assert decided.decided_after <= len(verdicts) == result.total < budget * 2 / 3


def _texts_by_who(session: Session, lab: object) -> dict[tuple[str, int], str]:
    """(who, prompt position) -> text of the trained checkpoints, who being the step."""
    from judging.data.models import Checkpoint, Prompt

    rows = session.execute(
        select(Checkpoint.step, Prompt.position, Generation.text)
        .join(Checkpoint, Checkpoint.id == Generation.checkpoint_id)
        .join(Prompt, Prompt.id == Generation.prompt_id)
        .where(
            Prompt.prompt_set_id == lab.prompt_set_id,  # type: ignore[attr-defined]
            Checkpoint.kind == "trained",
        )
    )
    return {(str(step), position): text for step, position, text in rows}
