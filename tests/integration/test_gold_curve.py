"""The gold curve of a simulated study: stored gold scores per generation, the noise-free gold
win rate on exactly the judged pairs (hand-counted), and the study page and reports showing it
beside the human win rate only when the study has gold scores."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.report import build_report, render_markdown
from judging.analysis.gold_curve import gold_rates, store_gold_scores, study_generations
from judging.data.models import Comparison, GoldScore
from judging.gold import GoldScore as GoldParts
from judging.studies.raters import invite_rater
from tests.judging_helpers import login
from tests.research_helpers import STEPS, JudgedStudy, judged_study

PROMPTS = 20
GOLD_WINS = {10: 10, 20: 15, 30: 4, 40: 2}
"""Prompts (of 20) on which the gold scorer prefers the checkpoint: gold rates .5 .75 .2 .1."""


def _parts(total: float) -> GoldParts:
    return GoldParts(total, 0.0, 0.0, 0.0, 0.0, 0.0)


def _store_gold(session: Session, judged: JudgedStudy, scorer: str = "test-gold/1") -> None:
    """Reference responses score 0.5; a checkpoint's scores 0.9 on its first GOLD_WINS prompts
    (in prompt order) and 0.1 on the rest."""
    step_of = {v: k for k, v in judged.by_step.items()}
    order = {pid: i for i, pid in enumerate(judged.lab.prompt_ids)}
    scores: dict[int, GoldParts] = {}
    for c in session.scalars(select(Comparison).where(Comparison.study_id == judged.study.id)):
        assert c.reference_generation_id is not None
        scores[c.reference_generation_id] = _parts(0.5)
        wins = order[c.prompt_id] < GOLD_WINS[step_of[c.checkpoint_id]]
        scores[c.candidate_generation_id] = _parts(0.9 if wins else 0.1)
    assert store_gold_scores(session, scores, scorer) == len(scores)


@pytest.fixture
def judged(db_session: Session, tmp_path: Path) -> JudgedStudy:
    return judged_study(db_session, tmp_path, prompts=PROMPTS)


def test_gold_rates_equal_hand_counts_on_the_judged_pairs(
    db_session: Session, judged: JudgedStudy
) -> None:
    assert gold_rates(db_session, judged.study.id) == {}  # no gold scores: no curve
    ids = {gid for gid, _, _ in study_generations(db_session, judged.study.id)}
    compared = db_session.execute(
        select(Comparison.candidate_generation_id, Comparison.reference_generation_id).where(
            Comparison.study_id == judged.study.id
        )
    ).all()
    assert ids == {g for pair in compared for g in pair}
    _store_gold(db_session, judged)
    rates = gold_rates(db_session, judged.study.id)
    assert set(rates) == set(judged.by_step.values())
    for step in STEPS:
        interval = rates[judged.by_step[step]]
        assert interval.estimate == pytest.approx(GOLD_WINS[step] / PROMPTS)
        assert interval.n_clusters == PROMPTS
        assert interval.low <= interval.estimate <= interval.high


def test_rescoring_replaces_and_mixed_scorers_never_pair(
    db_session: Session, judged: JudgedStudy
) -> None:
    _store_gold(db_session, judged, scorer="old/1")
    _store_gold(db_session, judged, scorer="new/2")  # replaced, not duplicated
    rows = db_session.scalars(select(GoldScore)).all()
    assert {r.scorer for r in rows} == {"new/2"}
    assert all(set(r.parts) >= {"relevance", "total"} for r in rows)
    # One reference response rescored by another scorer: its pairs drop out of the curve.
    first = db_session.scalars(
        select(Comparison)
        .where(Comparison.study_id == judged.study.id)
        .order_by(Comparison.id)
        .limit(1)
    ).one()
    assert first.reference_generation_id is not None
    store_gold_scores(db_session, {first.reference_generation_id: _parts(0.5)}, "other/3")
    dropped = db_session.scalar(
        select(Comparison.id)
        .where(Comparison.reference_generation_id == first.reference_generation_id)
        .limit(1)
    )
    assert dropped is not None
    n = sum(i.n_votes for i in gold_rates(db_session, judged.study.id).values())
    shared = db_session.scalars(
        select(Comparison.id).where(
            Comparison.study_id == judged.study.id,
            Comparison.reference_generation_id == first.reference_generation_id,
        )
    ).all()
    assert n == len(STEPS) * PROMPTS - len(shared)


def test_study_page_and_reports_show_the_gold_curve_only_with_gold_scores(
    client: TestClient, db_session: Session, judged: JudgedStudy
) -> None:
    _, token = invite_rater(db_session, name="admin", role="admin")
    db_session.commit()
    login(client, token)
    url = f"/research/studies/{judged.study.id}"
    page = client.get(url).text
    assert "Gold win rate" not in page and "gold preference" not in page
    _store_gold(db_session, judged)
    db_session.commit()
    page = client.get(url).text
    assert "Gold win rate [95% CI]" in page and 'id="gold-note"' in page
    assert "0.750 [" in page  # step 20's gold rate in the table
    assert "gold preference" in page  # the trace beside the human one in the win-rate chart
    report = build_report(db_session, judged.study.id)
    gold_traces = [
        t
        for c in report.charts
        if c.id == "win-rate"
        for t in c.figure["data"]
        if "gold preference" in t["name"]
    ]
    assert len(gold_traces) == 1
    assert gold_traces[0]["x"] == list(STEPS)
    assert gold_traces[0]["y"] == pytest.approx([GOLD_WINS[s] / PROMPTS for s in STEPS])
    markdown = render_markdown(report)
    assert "Gold win rate [95% CI]" in markdown and "0.100 [" in markdown
