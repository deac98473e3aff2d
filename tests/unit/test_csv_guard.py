"""CSV exports neutralise spreadsheet formulas without altering real numbers."""

from __future__ import annotations

import csv
import io

import pytest

from judging.analysis.exports import JUDGEMENT_FIELDS, judgements_csv


def _cell(value: str) -> str:
    record = dict.fromkeys(JUDGEMENT_FIELDS, "")
    record["rationale"] = value
    row = next(csv.DictReader(io.StringIO(judgements_csv([record]), newline="")))
    return row["rationale"]


@pytest.mark.parametrize(
    "value", ["=1+1", "+cmd", "-cmd|x", "@SUM(A1)", "\t=1+1", "\r=1+1", "\n=HYPERLINK()"]
)
def test_formula_like_cells_are_quoted(value: str) -> None:
    assert _cell(value) == "'" + value


@pytest.mark.parametrize("value", ["-0.3", "+1", "-12", "1e-3", "-1.5E+2", "plain text", ""])
def test_numbers_and_text_are_left_alone(value: str) -> None:
    assert _cell(value) == value
