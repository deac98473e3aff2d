"""The stored recommendation on PostgreSQL: the reward-hacked checkpoint is not chosen, history
is kept, and a new verdict makes the stored one stale."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from judging.analysis.dashboard.votes import vote_rows
from judging.analysis.dashboard.win_rates import verdicts
from judging.analysis.recommendation import (
    is_stale,
    latest_recommendation,
    recommendation_history,
    refresh_recommendation,
)
from judging.data.models import Assignment, Comparison, Generation, Judgement
from judging.errors import NotFoundError
from judging.stats.rule import RecommendationRule
from judging.studies.evidence import (
    bradley_terry_strengths,
    load_study_evidence,
    study_lc_intervals,
)
from judging.studies.qc import exclude_rater, restore_rater, study_qc
from judging.studies.service import create_study
from tests.judging_helpers import build_lab
from tests.research_helpers import judge_pending, judged_study

RULE = RecommendationRule(n_boot=200)


def own_reference_diffs(session: Session, study_id: int, checkpoint_id: int) -> list[float]:
    """len(candidate) - len(the comparison's own reference), once per judged assignment."""
    candidate, reference = aliased(Generation), aliased(Generation)
    rows = session.execute(
        select(candidate.text, reference.text)
        .select_from(Judgement)
        .join(Assignment, Assignment.id == Judgement.assignment_id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .join(candidate, candidate.id == Comparison.candidate_generation_id)
        .join(reference, reference.id == Comparison.reference_generation_id)
        .where(Comparison.study_id == study_id, Comparison.checkpoint_id == checkpoint_id)
    )
    return [float(len(c) - len(r)) for c, r in rows]


def test_evidence_is_loaded_with_scores_lengths_and_summaries(
    db_session: Session, tmp_path: Path
) -> None:
    judged = judged_study(db_session, tmp_path, leave=0)
    study = load_study_evidence(db_session, judged.study.id)
    assert [e.step for e in study.evidence] == [10, 20, 30, 40]
    assert study.reference.label == "ppo-lab@base"
    by_step = {e.step: e for e in study.evidence}
    assert len(by_step[20].votes) == 60  # 30 prompts x 2 raters
    # (7p mod 20) < 16 holds for 16 of p = 0..19 and 9 of p = 20..29.
    assert sum(v.score for v in by_step[20].votes) / 60 == pytest.approx(25 / 30)
    assert all(v.length_diff > 150 for v in by_step[40].votes)
    # Each comparison has its own base replicate: the length difference is against that one.
    expected = sorted(
        d for d in own_reference_diffs(db_session, judged.study.id, judged.by_step[10])
    )
    assert sorted(v.length_diff for v in by_step[10].votes) == expected
    assert 0 in expected and any(d < 0 for d in expected)  # replicates differ: not one shared base
    assert by_step[40].flags == ("length_growth>1.5",)
    assert by_step[40].reward is not None and by_step[40].reward.estimate == 2.6
    assert by_step[20].kl is not None and by_step[20].kl.low == pytest.approx(2.2)
    assert by_step[30].repetition == pytest.approx(0.03)
    assert study.n_judgements == 4 * 30 * 2


def test_highest_reward_length_blow_up_is_not_recommended_and_the_rationale_says_why(
    db_session: Session, tmp_path: Path
) -> None:
    judged = judged_study(db_session, tmp_path)
    result = refresh_recommendation(db_session, judged.study.id, RULE)
    assert result.computed and result.stored is not None
    row = result.stored
    assert row.checkpoint_id == judged.by_step[20]
    assert "Recommended: ppo-lab@20" in row.rationale
    assert "The highest-reward checkpoint, ppo-lab@40 (held-out reward 2.600" in row.rationale
    assert "hard flag length_growth>1.5" in row.rationale
    assert "x3.10 the base's length" in row.rationale
    assert "last checkpoint of the run is the highest-reward one" in row.rationale
    evidence = row.evidence
    assert evidence["rule"]["min_prompts"] == 20 and evidence["method"] == "paired-delta-v2"
    assert 0.5 < evidence["p_within_delta"] <= 1.0
    assert 0.0 <= evidence["expected_regret"] < 0.05 and evidence["delta"] == 0.03
    inputs = {i["step"]: i for i in evidence["inputs"]}
    assert inputs[40]["flags"] == ["length_growth>1.5"]
    assert inputs[20]["verdicts"]["n"] == 60
    assert evidence["decision"]["choice"] == judged.by_step[20]


def test_refresh_reuses_a_current_recommendation_and_appends_when_verdicts_change(
    db_session: Session, tmp_path: Path
) -> None:
    judged = judged_study(db_session, tmp_path, leave=1)
    first = refresh_recommendation(db_session, judged.study.id, RULE).stored
    assert first is not None
    assert not is_stale(db_session, judged.study.id, RULE)
    again = refresh_recommendation(db_session, judged.study.id, RULE)
    assert not again.computed and again.stored is not None and again.stored.id == first.id

    judge_pending(db_session, judged)  # a new verdict arrives
    assert is_stale(db_session, judged.study.id, RULE)
    second = refresh_recommendation(db_session, judged.study.id, RULE).stored
    assert second is not None and second.id != first.id
    assert second.evidence["n_judgements"] == first.evidence["n_judgements"] + 1
    history = recommendation_history(db_session, judged.study.id)
    assert [r.id for r in history] == [first.id, second.id]  # the old one is kept, unchanged
    latest = latest_recommendation(db_session, judged.study.id)
    assert latest is not None and latest.id == second.id
    # A different rule is a different input too.
    assert is_stale(db_session, judged.study.id, RecommendationRule(n_boot=200, max_kl=2.0))


def test_nothing_qualifies_nothing_is_stored(db_session: Session, tmp_path: Path) -> None:
    judged = judged_study(db_session, tmp_path)
    result = refresh_recommendation(
        db_session, judged.study.id, RecommendationRule(n_boot=50, min_prompts=500)
    )
    assert result.stored is None and result.decision is not None
    assert result.decision.problem == "every checkpoint is excluded by the rule"
    assert "No checkpoint qualifies" in result.explanation[-1]
    assert latest_recommendation(db_session, judged.study.id) is None


def test_bradley_terry_strengths_of_a_study_and_in_the_stored_evidence(
    db_session: Session, tmp_path: Path
) -> None:
    judged = judged_study(db_session, tmp_path, leave=0)
    strengths = bradley_terry_strengths(db_session, [judged.study.id], n_boot=100)
    base = judged.lab.base.id
    assert strengths[base].estimate == 0.0
    # Star design with one virtual tie: logit((wins + 1/2) / (verdicts + 1)); step 20 won 50/60.
    s20 = strengths[judged.by_step[20]]
    assert s20.estimate == pytest.approx(math.log(50.5 / 10.5), abs=1e-6)
    assert s20.low < s20.estimate < s20.high
    assert strengths[judged.by_step[40]].estimate < 0 < s20.low
    stored = refresh_recommendation(db_session, judged.study.id, RULE).stored
    assert stored is not None
    bt = stored.evidence["bradley_terry"]
    assert bt["ppo-lab@base"]["estimate"] == 0.0
    assert bt["ppo-lab@20"]["estimate"] == pytest.approx(s20.estimate)
    with pytest.raises(NotFoundError):
        bradley_terry_strengths(db_session, [judged.study.id, 999_999])


def test_study_lc_intervals_match_the_recommendation(db_session: Session, tmp_path: Path) -> None:
    judged = judged_study(db_session, tmp_path, leave=0)
    intervals = study_lc_intervals(db_session, judged.study.id, n_boot=200)
    assert set(intervals) == set(judged.by_step.values())
    stored = refresh_recommendation(db_session, judged.study.id, RULE).stored
    assert stored is not None
    scores = {s["checkpoint_id"]: s for s in stored.evidence["decision"]["scores"]}
    for checkpoint_id, interval in intervals.items():
        lc = scores[checkpoint_id]["lc_win_rate"]
        assert interval.estimate == pytest.approx(lc["estimate"], abs=1e-9)
        assert (interval.low, interval.high) == pytest.approx((lc["low"], lc["high"]))


def _votes_of(session: Session, study_id: int, checkpoint_id: int) -> list[float]:
    study = load_study_evidence(session, study_id)
    return [v.score for e in study.evidence if e.checkpoint_id == checkpoint_id for v in e.votes]


def test_a_withdrawn_verdict_is_not_counted_and_makes_the_recommendation_stale(
    db_session: Session, tmp_path: Path
) -> None:
    judged = judged_study(db_session, tmp_path, leave=0)
    study_id = judged.study.id
    refresh_recommendation(db_session, study_id, RULE)
    assert not is_stale(db_session, study_id, RULE)
    c20 = judged.by_step[20]
    before = _votes_of(db_session, study_id, c20)
    win = db_session.scalars(
        select(Judgement)
        .join(Assignment, Assignment.id == Judgement.assignment_id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.checkpoint_id == c20, Judgement.choice == Assignment.checkpoint_side)
        .order_by(Judgement.id)
        .limit(1)
    ).one()
    win.withdrawn_at = datetime.now(UTC)  # what an undo does: the row stays
    db_session.flush()
    after = _votes_of(db_session, study_id, c20)
    assert len(after) == len(before) - 1 and sum(after) == sum(before) - 1
    assert load_study_evidence(db_session, study_id).n_judgements == 4 * 30 * 2 - 1
    assert is_stale(db_session, study_id, RULE)
    stored = refresh_recommendation(db_session, study_id, RULE).stored
    assert stored is not None
    assert {i["step"]: i for i in stored.evidence["inputs"]}[20]["verdicts"]["n"] == 59


def test_an_excluded_rater_is_not_counted_until_restored(
    db_session: Session, tmp_path: Path
) -> None:
    judged = judged_study(db_session, tmp_path, leave=0)
    study_id = judged.study.id
    admin = judged.lab.raters[0].id
    bob = judged.lab.raters[1].id
    refresh_recommendation(db_session, study_id, RULE)
    exclude_rater(db_session, judged.study, bob, by=admin, reason="fails checks")
    db_session.flush()
    assert len(_votes_of(db_session, study_id, judged.by_step[20])) == 30  # alice's only
    assert load_study_evidence(db_session, study_id).n_judgements == 4 * 30
    assert is_stale(db_session, study_id, RULE)
    restore_rater(db_session, judged.study, bob, by=admin)
    db_session.flush()
    assert len(_votes_of(db_session, study_id, judged.by_step[20])) == 60
    assert not is_stale(db_session, study_id, RULE)


def test_an_identical_pair_counts_as_one_tie_per_rater_slot(
    db_session: Session, tmp_path: Path
) -> None:
    same = "Exactly the same answer to prompt 0."
    lab = build_lab(
        db_session,
        tmp_path,
        prompts=3,
        steps=(10,),
        base_samples=1,
        texts={("base", 0): same, ("10", 0): same},
    )
    study = create_study(
        db_session,
        name="auto-tie",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters],
        raters_per_comparison=2,
        attention_check_rate=0.0,
        seed=1,
    )
    tied = db_session.scalars(
        select(Comparison).where(Comparison.study_id == study.id, Comparison.auto_choice == "tie")
    ).all()
    assert [c.prompt_id for c in tied] == [lab.prompt_ids[0]]
    evidence = load_study_evidence(db_session, study.id).evidence[0]
    # No verdict yet: the auto tie alone, twice (two raters per comparison), each a half.
    assert [(v.prompt_id, v.score, v.length_diff) for v in evidence.votes] == [
        (lab.prompt_ids[0], 0.5, 0.0),
        (lab.prompt_ids[0], 0.5, 0.0),
    ]
    # The QC page and the dashboard count it the same way.
    qc = study_qc(db_session, study, n_boot=0)
    assert qc.checkpoints[0].win_rate == pytest.approx(0.5)
    rows = vote_rows(db_session, study_id=study.id)
    assert [(r.prompt_id, r.winner, r.length_diff) for r in rows] == [
        (lab.prompt_ids[0], "tie", 0),
        (lab.prompt_ids[0], "tie", 0),
    ]
    rates = verdicts(db_session, study_id=study.id).rates[lab.trained[0].id]
    assert rates.raw is not None and rates.raw.estimate == pytest.approx(0.5)
