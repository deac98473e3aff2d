"""Exports on PostgreSQL: recommendation JSON, judgements CSV, TRL preference JSONL, model card,
and the `rlhf export` commands against a committed database."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cli.main import app
from judging.analysis.exports import (
    JUDGEMENT_FIELDS,
    MODEL_CARD_MARKER,
    export_recommendation,
    judgement_records,
    judgements_csv,
    preference_records,
    pseudonym,
    to_jsonl,
    write_model_card,
)
from judging.data.models import Judgement
from judging.errors import ConflictError, NotFoundError
from judging.stats.rule import RecommendationRule
from judging.studies.qc import exclude_rater
from tests.research_helpers import LONG, judge_pending, judged_study

RULE = RecommendationRule(n_boot=100)
KEY = b"test-key"


def test_recommendation_document(db_session: Session, tmp_path: Path) -> None:
    judged = judged_study(db_session, tmp_path)
    doc = export_recommendation(db_session, judged.study.id, RULE)
    assert doc["checkpoint"]["label"] == "ppo-lab@20"
    assert doc["checkpoint"]["path"].endswith("ppo-lab-checkpoint-20")
    assert doc["explanation"][1].startswith("Recommended: ppo-lab@20")
    assert doc["p_within_delta"] == doc["evidence"]["p_within_delta"] is not None
    assert doc["expected_regret"] == doc["evidence"]["expected_regret"] is not None
    json.dumps(doc)  # JSON-ready as it is
    with pytest.raises(NotFoundError):
        export_recommendation(db_session, 999_999, RULE)
    with pytest.raises(ConflictError, match="No checkpoint qualifies"):
        export_recommendation(db_session, judged.study.id, RecommendationRule(min_prompts=999))


def test_judgements_csv_has_prompt_both_responses_and_is_formula_safe(
    db_session: Session, tmp_path: Path
) -> None:
    judged = judged_study(db_session, tmp_path)
    records = judgement_records(db_session, judged.study.id, key=KEY)
    rows = list(csv.DictReader(io.StringIO(judgements_csv(records))))
    assert len(rows) == 4 * 30 * 2 - 1 and tuple(rows[0]) == JUDGEMENT_FIELDS
    hacked = [r for r in rows if r["checkpoint"] == "ppo-lab@40"]
    assert hacked and all(LONG.strip() in r["checkpoint_response"] for r in hacked)
    assert all(r["reference"] == "ppo-lab@base" for r in rows)
    assert all(r["prompt"].startswith("Prompt number") for r in rows)
    assert all(r["rater"].startswith("rater-") for r in rows)  # pseudonyms by default
    assert not any("alice" in r["rater"] or "bob" in r["rater"] for r in rows)
    assert all(r["rationale"].startswith("'=SUM(A1)") for r in rows)  # formula neutralised
    named = judgement_records(db_session, judged.study.id, key=KEY, anonymise=False)
    assert {r["rater"] for r in named} == {"alice", "bob"}


def test_preference_pairs_exclude_ties_and_orient_chosen_by_the_verdict(
    db_session: Session, tmp_path: Path
) -> None:
    judged = judged_study(db_session, tmp_path, leave=3)
    judge_pending(db_session, judged, "tie", "both_bad", judged_side := "left")
    records = preference_records(db_session, judged.study.id, key=KEY)
    decisive = 4 * 30 * 2 - 2  # every verdict but the tie and the both-bad
    assert len(records) == decisive and judged_side
    for r in records:
        assert set(r) >= {"prompt", "chosen", "rejected", "study", "checkpoint", "rater", "verdict"}
        assert r["verdict"] in ("checkpoint", "reference") and r["rater"].startswith("rater-")
        assert r["chosen_from"] == (
            r["checkpoint"] if r["verdict"] == "checkpoint" else "ppo-lab@base"
        )
        if r["checkpoint"] == "ppo-lab@40":
            long_side = r["chosen"] if r["verdict"] == "checkpoint" else r["rejected"]
            assert LONG.strip() in long_side
    chat = preference_records(db_session, judged.study.id, key=KEY, conversational=True)
    assert chat[0]["prompt"][0]["role"] == "user" and chat[0]["chosen"][0]["role"] == "assistant"
    lines = to_jsonl(records).splitlines()
    assert len(lines) == decisive and json.loads(lines[0])["prompt"] == records[0]["prompt"]


def test_model_card_is_written_into_the_recommended_checkpoint(
    db_session: Session, tmp_path: Path
) -> None:
    judged = judged_study(db_session, tmp_path, leave=0)
    readme = write_model_card(db_session, judged.study.id, RULE)
    assert readme == tmp_path / "ppo-lab-checkpoint-20" / "README.md"
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["base_model"] == "models/base" and meta["library_name"] == "peft"
    assert "ppo" in meta["tags"]
    result = meta["model-index"][0]["results"][0]
    assert meta["model-index"][0]["name"] == "ppo-lab@20"
    values = {m["name"]: m["value"] for m in result["metrics"]}
    assert values["Human win rate vs base"] == pytest.approx(25 / 30, abs=1e-4)
    assert values["Held-out reward (training RM)"] == pytest.approx(0.9)
    assert MODEL_CARD_MARKER in text and "## Why this checkpoint" in text
    assert "hard flag length_growth>1.5" in text
    assert "| ppo-lab@40 | highest reward, last |" in text
    write_model_card(db_session, judged.study.id, RULE)  # our own card is replaced quietly
    readme.write_text("# someone else's card\n", encoding="utf-8")
    with pytest.raises(ConflictError, match="not written by rlhf-lab"):
        write_model_card(db_session, judged.study.id, RULE)
    write_model_card(db_session, judged.study.id, RULE, overwrite=True)
    assert MODEL_CARD_MARKER in readme.read_text(encoding="utf-8")


def test_rlhf_export_commands(cli_db: Session, tmp_path: Path) -> None:
    judged = judged_study(cli_db, tmp_path)
    cli_db.commit()
    sid = str(judged.study.id)
    runner = CliRunner()
    result = runner.invoke(app, ["export", "recommendation", "--study", sid, "--n-boot", "100"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["checkpoint"]["label"] == "ppo-lab@20"
    out = tmp_path / "prefs.jsonl"
    result = runner.invoke(app, ["export", "preferences", "-s", sid, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == 4 * 30 * 2 - 1
    result = runner.invoke(app, ["export", "judgements", "--study", sid])
    assert result.exit_code == 0 and result.output.startswith("study,comparison_id")
    out = tmp_path / "judgements.jsonl"
    result = runner.invoke(app, ["export", "judgements", "-s", sid, "-f", "jsonl", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 4 * 30 * 2 - 1 and tuple(rows[0]) == JUDGEMENT_FIELDS
    bad = runner.invoke(app, ["export", "judgements", "-s", sid, "-f", "xml"])
    assert bad.exit_code != 0 and "csv or jsonl" in bad.output
    result = runner.invoke(app, ["export", "model-card", "--study", sid, "--n-boot", "100"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ppo-lab-checkpoint-20" / "README.md").is_file()
    result = runner.invoke(app, ["export", "recommendation", "-s", sid, "--metric", "median"])
    assert result.exit_code != 0 and "lc or adjusted" in result.output
    result = runner.invoke(app, ["export", "recommendation", "-s", sid, "--delta", "-0.1"])
    assert result.exit_code != 0 and "--delta" in result.output


def test_exports_leave_out_withdrawn_verdicts_and_excluded_raters(
    db_session: Session, tmp_path: Path
) -> None:
    judged = judged_study(db_session, tmp_path, leave=0)
    study_id = judged.study.id
    alice, bob = judged.lab.raters[0], judged.lab.raters[1]
    full = 4 * 30 * 2
    assert len(judgement_records(db_session, study_id, key=KEY)) == full
    decisive = len(preference_records(db_session, study_id, key=KEY))
    # An undo marks the verdict withdrawn (the row stays): no longer exported.
    undone = db_session.scalars(
        select(Judgement)
        .where(Judgement.choice.in_(("left", "right")))
        .order_by(Judgement.id.desc())
        .limit(1)
    ).one()
    undone.withdrawn_at = datetime.now(UTC)
    db_session.flush()
    records = judgement_records(db_session, study_id, key=KEY)
    assert len(records) == full - 1
    assert undone.assignment.comparison_id not in {
        r["comparison_id"]
        for r in records
        if r["rater"] == pseudonym(KEY, undone.assignment.rater_id)
    }
    assert len(preference_records(db_session, study_id, key=KEY)) == decisive - 1
    # An excluded rater's verdicts are not training data either.
    exclude_rater(db_session, judged.study, bob.id, by=alice.id)
    db_session.flush()
    named = judgement_records(db_session, study_id, key=KEY, anonymise=False)
    assert {r["rater"] for r in named} == {"alice"}
    audit = judgement_records(db_session, study_id, key=KEY, anonymise=False, include_excluded=True)
    assert len(audit) == full - 1
    assert {r["rater"] for r in audit if r["excluded"]} == {"bob"}
    prefs = preference_records(db_session, study_id, key=KEY)
    assert prefs and {r["rater"] for r in prefs} == {pseudonym(KEY, alice.id)}
