"""Export rendering without a database: CSV cells, JSONL lines, the model card's front matter."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import yaml

from judging.analysis.exports import (
    JUDGEMENT_FIELDS,
    csv_cell,
    judgements_csv,
    model_card_markdown,
    to_jsonl,
)
from judging.data.models import Recommendation
from judging.studies.evidence import CheckpointInfo


def test_csv_cell_neutralises_formula_starts_only() -> None:
    for text in ("=1+1", "+cmd", "-2+3", "-A1", "@SUM(A1)", "\t=1", "\r=1"):
        assert csv_cell(text) == "'" + text
    # A signed number is data, not a formula: it stays a number for the spreadsheet.
    for value in ("plain", " =not first", "", 3, None, "-2", "-0.3", "+1e-3"):
        assert csv_cell(value) == value


def test_judgements_csv_round_trips_hostile_text() -> None:
    record = dict.fromkeys(JUDGEMENT_FIELDS, "")
    record.update(prompt='Say "hi",\nthen =HYPERLINK("x")', rationale="=2+2", time_on_item_ms=5)
    rows = list(csv.DictReader(io.StringIO(judgements_csv([record]))))
    assert rows[0]["prompt"] == 'Say "hi",\nthen =HYPERLINK("x")'  # quoted, kept whole
    assert rows[0]["rationale"] == "'=2+2" and rows[0]["time_on_item_ms"] == "5"


def test_jsonl_is_one_object_per_line_unicode_kept() -> None:
    text = to_jsonl([{"prompt": "café\nnext"}, {"prompt": "b"}])
    lines = text.splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["prompt"] == "café\nnext"
    assert "café" in text


def test_model_card_front_matter_and_escaped_table() -> None:
    info = CheckpointInfo(
        7, "run|x@20", 1, "run|x", "ppo", "models/base", "models/rm", 20, "trained", "/c", 0.05
    )
    rec = Recommendation(
        id=3,
        study_id=1,
        checkpoint_id=7,
        method="lc-winrate-v1",
        rationale="Rule: ...\nRecommended: run|x@20 <script>",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        evidence={
            "study": {"name": "s", "reference": "run|x@base"},
            "inputs": [
                {"checkpoint_id": 7, "label": "run|x@20", "flags": ["<b>"],
                 "reward": {"estimate": 1.5, "low": 1.4, "high": 1.6}, "length_growth": 1.1},
            ],
            "decision": {
                "scores": [{"checkpoint_id": 7,
                            "lc_win_rate": {"estimate": 0.7, "low": 0.6, "high": 0.8},
                            "win_rate": {"estimate": 0.72, "low": 0.6, "high": 0.8}}],
                "highest_reward": 7,
                "last": 7,
            },
        },
    )  # fmt: skip
    text = model_card_markdown(info, rec, "heldout-200", is_adapter=False)
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["library_name"] == "transformers" and meta["base_model"] == "models/base"
    metrics = {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics["Human win rate vs base, length-controlled"] == 0.7
    assert metrics["Length growth vs base"] == 1.1
    assert "Held-out reward (evaluation RM)" not in metrics  # absent, not zero
    assert "| run\\|x@20 | recommended, highest reward, last | 0.700 [0.600, 0.800] |" in text
    assert "&lt;b>" in text and "<b>" not in text
    assert "- Recommended: run|x@20 &lt;script>" in text and "<script>" not in text
    assert "with KL coefficient 0.05" in text
