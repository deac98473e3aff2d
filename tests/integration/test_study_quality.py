"""QC statistics of a study on PostgreSQL: clustered win-rate intervals, per-pair and Fleiss'
kappa, uneven prompt coverage, prompt categories, and excluding careless raters."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from judging.analysis.exports import judgement_records
from judging.data.models import Assignment, Comparison, Generation, Prompt, RaterExclusion, Study
from judging.stats.winrate import Vote, win_rate_interval
from judging.studies import qc
from judging.studies import service as studies
from tests.judging_helpers import Lab, build_lab, form_value, judge_queue, switch_to


def _other(side: str) -> str:
    return "right" if side == "left" else "left"


def _study(session: Session, lab: Lab, checkpoints: list[int], **kwargs: object) -> Study:
    options: dict[str, object] = {"attention_check_rate": 0, "seed": 11, **kwargs}
    return studies.create_study(
        session,
        name="quality",
        checkpoint_ids=checkpoints,
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters],
        **options,  # type: ignore[arg-type]
    )


def test_win_rate_interval_is_clustered_by_prompt(db_session: Session, tmp_path: Path) -> None:
    lab = build_lab(db_session, tmp_path, prompts=8, steps=(10,))
    study = _study(db_session, lab, [lab.trained[0].id])
    position = {pid: i for i, pid in enumerate(lab.prompt_ids)}

    # The checkpoint wins on even prompts and loses on odd ones; bob calls prompt 1 a tie.
    def pick(a: Assignment, c: Comparison, tie_on: int | None = None) -> str:
        i = position[c.prompt_id]
        if i == tie_on:
            return "tie"
        return a.checkpoint_side if i % 2 == 0 else _other(a.checkpoint_side)

    alice, bob = lab.raters
    judge_queue(db_session, alice.id, pick)
    judge_queue(db_session, bob.id, lambda a, c: pick(a, c, tie_on=1))
    ckpt = qc.study_qc(db_session, study).checkpoints[0]
    # 16 verdicts: 8 wins, 7 losses, 1 tie -> (8 + 0.5) / 16.
    assert ckpt.judged == 16 and ckpt.win_rate == pytest.approx(8.5 / 16)
    assert ckpt.interval is not None
    assert ckpt.interval.n_clusters == 8 and ckpt.interval.n_votes == 16
    scores = [1.0] * 8 + [0.0] * 7 + [0.5]
    prompts = [0, 0, 2, 2, 4, 4, 6, 6, 1, 3, 3, 5, 5, 7, 7, 1]
    expected = win_rate_interval([Vote(p, s) for p, s in zip(prompts, scores, strict=True)])
    assert expected is not None
    assert (ckpt.interval.low, ckpt.interval.high) == pytest.approx((expected.low, expected.high))
    assert ckpt.win_rate is not None
    assert ckpt.interval.low < ckpt.win_rate < ckpt.interval.high
    quick = qc.study_qc(db_session, study, n_boot=0).checkpoints[0]
    assert quick.interval is None and quick.win_rate == ckpt.win_rate


def test_fleiss_and_per_pair_kappa(db_session: Session, tmp_path: Path) -> None:
    lab = build_lab(db_session, tmp_path, prompts=6, steps=(10,), raters=("ann", "ben", "cat"))
    study = _study(db_session, lab, [lab.trained[0].id])
    ann, ben, cat = lab.raters
    judge_queue(db_session, ann.id, lambda a, c: a.checkpoint_side)
    judge_queue(db_session, ben.id, lambda a, c: a.checkpoint_side)
    judge_queue(db_session, cat.id, lambda a, c: "tie")
    report = qc.study_qc(db_session, study)
    pairs = {(p.rater_a, p.rater_b): p for p in report.pair_agreement}
    assert sum(p.n for p in pairs.values()) == 6  # every comparison: one pair of raters
    if ("ann", "ben") in pairs:
        assert pairs[("ann", "ben")].agreement == 1.0
    for key in (("ann", "cat"), ("ben", "cat")):
        if key in pairs:
            assert pairs[key].agreement == 0.0
    assert report.fleiss_units == 6
    assert report.fleiss_kappa is not None and report.fleiss_kappa < 0.5


def test_uneven_coverage_is_flagged_and_scored_on_shared_prompts(
    db_session: Session, tmp_path: Path
) -> None:
    lab = build_lab(db_session, tmp_path, prompts=4, steps=(10, 20))
    late = lab.trained[1]
    db_session.execute(
        delete(Generation).where(
            Generation.checkpoint_id == late.id, Generation.prompt_id == lab.prompt_ids[3]
        )
    )
    study = _study(db_session, lab, [c.id for c in lab.trained])
    position = {pid: i for i, pid in enumerate(lab.prompt_ids)}
    # Both checkpoints lose everywhere except prompt 3, which only step 10 has.
    for rater in lab.raters:
        judge_queue(
            db_session,
            rater.id,
            lambda a, c: a.checkpoint_side if position[c.prompt_id] == 3 else "tie",
        )
    report = qc.study_qc(db_session, study)
    assert report.uneven_coverage
    assert report.missing == [("ppo-lab@20", "p003")]
    by_label = {c.label: c for c in report.checkpoints}
    assert by_label["ppo-lab@10"].comparisons == 4 and by_label["ppo-lab@20"].comparisons == 3
    # Scored on the three prompts both have, step 10 is not credited with its extra win.
    assert by_label["ppo-lab@10"].win_rate == pytest.approx(0.5)
    assert by_label["ppo-lab@10"].interval is not None
    assert by_label["ppo-lab@10"].interval.n_clusters == 3
    assert by_label["ppo-lab@10"].all_prompts_win_rate == pytest.approx((6 * 0.5 + 2) / 8)


def test_breakdown_by_prompt_category(db_session: Session, tmp_path: Path) -> None:
    lab = build_lab(db_session, tmp_path, prompts=4, steps=(10,))
    for pid, category in zip(lab.prompt_ids, ["how-to", "how-to", "advice", None], strict=True):
        prompt = db_session.get(Prompt, pid)
        assert prompt is not None
        prompt.category = category
    study = _study(db_session, lab, [lab.trained[0].id])
    how_to = set(lab.prompt_ids[:2])
    for rater in lab.raters:
        judge_queue(
            db_session,
            rater.id,
            lambda a, c: a.checkpoint_side if c.prompt_id in how_to else _other(a.checkpoint_side),
        )
    report = qc.study_qc(db_session, study)
    cells = {(b.category, b.label): b for b in report.categories}
    assert cells[("how-to", "ppo-lab@10")].win_rate == 1.0
    assert cells[("how-to", "ppo-lab@10")].judged == 4
    assert cells[("advice", "ppo-lab@10")].win_rate == 0.0
    assert cells[("uncategorised", "ppo-lab@10")].judged == 2


def test_careless_rater_flagged_excluded_and_restored(db_session: Session, tmp_path: Path) -> None:
    # A spare base sample per prompt: attention checks are built from unused clean responses.
    lab = build_lab(
        db_session,
        tmp_path,
        prompts=6,
        steps=(10,),
        raters=("alice", "bob", "admin"),
        base_samples=2,
    )
    alice, bob, admin = lab.raters
    study = studies.create_study(
        db_session,
        name="careless",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[alice.id, bob.id],
        attention_check_rate=0.5,
        seed=2,
    )
    judge_queue(db_session, alice.id, lambda a, c: a.checkpoint_side)
    judge_queue(db_session, bob.id, lambda a, c: _other(a.checkpoint_side))  # fails every check
    report = qc.study_qc(db_session, study)
    raters = {r.name: r for r in report.raters}
    assert raters["bob"].below_pass_rate and not raters["alice"].below_pass_rate
    assert report.checkpoints[0].win_rate == pytest.approx(0.5)
    assert report.raw_agreement == 0.0

    qc.exclude_rater(db_session, study, bob.id, by=admin.id, reason="failed attention checks")
    report = qc.study_qc(db_session, study)
    assert {r.name: r for r in report.raters}["bob"].excluded
    assert report.checkpoints[0].win_rate == 1.0  # alice only
    assert report.raw_agreement is None
    record = db_session.scalars(select(RaterExclusion)).one()
    assert record.excluded_by_id == admin.id and record.excluded_at is not None
    assert record.restored_at is None
    # The audit export keeps every verdict and says which ones the statistics leave out.
    exported = judgement_records(
        db_session, study.id, anonymise=False, key=b"k", include_excluded=True
    )
    assert {r["rater"] for r in exported if r["excluded"]} == {"bob"}
    assert any(not r["excluded"] for r in exported)

    qc.restore_rater(db_session, study, bob.id, by=admin.id)
    assert qc.study_qc(db_session, study).checkpoints[0].win_rate == pytest.approx(0.5)
    record = db_session.scalars(select(RaterExclusion)).one()
    assert record.restored_by_id == admin.id and record.restored_at is not None
    assert qc.excluded_rater_ids(db_session, study.id) == set()


def test_qc_page_flags_and_excludes_with_one_click(
    client: Any, db_session: Session, tmp_path: Path
) -> None:
    lab = build_lab(
        db_session,
        tmp_path,
        prompts=6,
        steps=(10, 20),
        raters=("alice", "bob", "admin"),
        base_samples=3,
    )
    alice, bob, admin = lab.raters
    db_session.execute(
        delete(Generation).where(
            Generation.checkpoint_id == lab.trained[1].id, Generation.prompt_id == lab.prompt_ids[5]
        )
    )
    study = studies.create_study(
        db_session,
        name="web qc",
        checkpoint_ids=[c.id for c in lab.trained],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[alice.id, bob.id],
        attention_check_rate=0.3,
        seed=2,
    )
    judge_queue(db_session, alice.id, lambda a, c: a.checkpoint_side)
    judge_queue(db_session, bob.id, lambda a, c: _other(a.checkpoint_side))
    switch_to(client, lab.tokens["admin"])
    html = client.get(f"/admin/studies/{study.id}/qc").text
    assert 'id="uneven-coverage"' in html and "p005" in html
    assert "Fleiss" in html and "alice · bob" in html
    bob_row = re.search(r'<tr data-rater="bob".*?</tr>', html, re.S)
    assert bob_row and "below 80% pass rate" in bob_row.group(0)
    response = client.post(
        f"/admin/studies/{study.id}/raters/{bob.id}/exclude",
        data={"csrf_token": form_value(html, "csrf_token"), "reason": "careless"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    html = client.get(f"/admin/studies/{study.id}/qc").text
    bob_row = re.search(r'<tr data-rater="bob".*?</tr>', html, re.S)
    assert bob_row and "excluded by admin" in bob_row.group(0) and "Count again" in bob_row.group(0)
    record = db_session.scalars(select(RaterExclusion)).one()
    assert (record.rater_id, record.excluded_by_id, record.reason) == (bob.id, admin.id, "careless")
    # A rater cannot exclude anyone.
    switch_to(client, lab.tokens["alice"])
    denied = client.post(
        f"/admin/studies/{study.id}/raters/{alice.id}/exclude", data={"csrf_token": "x"}
    )
    assert denied.status_code == 403
    switch_to(client, lab.tokens["admin"])
    html = client.get(f"/admin/studies/{study.id}/qc").text
    client.post(
        f"/admin/studies/{study.id}/raters/{bob.id}/restore",
        data={"csrf_token": form_value(html, "csrf_token")},
    )
    assert qc.excluded_rater_ids(db_session, study.id) == set()


COLLAPSED = "great great great great great great great great great great great great great"
CLEAN = (
    "Start with the basics.\n\n1. Read the question twice.\n2. Answer the part that matters.\n\n"
    "Then **check** your answer against the question. Finally, cut what does not help."
)


def test_attention_checks_use_clean_responses_and_keep_their_form(
    db_session: Session, tmp_path: Path
) -> None:
    # Every checkpoint output is collapsed ("both bad" would be right against anything), the base
    # answers cleanly with markdown: checks must be built from the base, never the checkpoint.
    prompts = 8
    texts = {("10", i): COLLAPSED for i in range(prompts)}
    texts |= {("base", i): CLEAN.replace("basics", f"basics of task {i}") for i in range(prompts)}
    texts |= {
        ("base#2", i): CLEAN.replace("basics", f"basics, take two, of task {i}")
        for i in range(prompts)
    }
    lab = build_lab(db_session, tmp_path, prompts=prompts, steps=(10,), texts=texts, base_samples=2)
    study = _study(db_session, lab, [lab.trained[0].id], attention_check_rate=0.5)
    checks = db_session.scalars(
        select(Comparison).where(Comparison.study_id == study.id, Comparison.kind == "attention")
    ).all()
    assert checks, "no attention checks were built"
    for check in checks:
        good = db_session.get(Generation, check.candidate_generation_id)
        assert good is not None and good.text != COLLAPSED and "\n" in good.text
        worse = check.degraded_text or ""
        assert check.degradation in ("off_topic", "truncated", "shuffled")
        assert "\n" in worse and worse.strip() != good.text.strip()
        if check.degradation == "off_topic":
            assert f"task {lab.prompt_ids.index(check.prompt_id)}." not in worse
        else:
            assert worse.count("\n") >= min(2, good.text.count("\n"))


def test_no_attention_check_when_no_clean_response_exists(
    db_session: Session, tmp_path: Path
) -> None:
    texts = {(who, i): COLLAPSED + f" {who} {i}" for who in ("base", "10") for i in range(4)}
    lab = build_lab(db_session, tmp_path, prompts=4, steps=(10,), texts=texts, base_samples=2)
    study = _study(db_session, lab, [lab.trained[0].id], attention_check_rate=1.0)
    kinds = db_session.scalars(select(Comparison.kind).where(Comparison.study_id == study.id)).all()
    assert "attention" not in kinds and kinds.count("normal") == 4
