"""The decision bench's --quick run as a test that can fail: the product's rule against raw win
rate in every scenario family, and the calibration of the probability it states.

40 random worlds per family, both budgets (about a minute on two cores). Comparisons are paired
(the same worlds for every rule), so their intervals are those of the per-world differences.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.decision_bench import run, summarise
from bench.decision_worlds import FAMILIES

MIN_BIN = 30
"""Calibration is checked in bins holding at least this many worlds."""


@pytest.fixture(scope="module")
def summary() -> dict[str, Any]:
    return summarise(run(list(FAMILIES), worlds=40, n_boot=1000, workers=2))


def _row(summary: dict[str, Any], family: str, budget: str, rule: str) -> dict[str, Any]:
    return next(
        r for r in summary["rows"]
        if (r["family"], r["budget"], r["rule"]) == (family, budget, rule)
    )  # fmt: skip


@pytest.mark.parametrize("budget", ["full", "half"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_product_is_no_worse_than_raw_win_rate(
    summary: dict[str, Any], family: str, budget: str
) -> None:
    diff, ci = _row(summary, family, budget, "raw win rate")["vs_product"]
    assert diff - ci <= 0, f"product worse than raw win rate by {diff:.4f} ± {ci:.4f}"


@pytest.mark.parametrize("family", ["length_hacker", "sparse"])
def test_the_product_beats_raw_win_rate_where_it_should(
    summary: dict[str, Any], family: str
) -> None:
    diff, ci = _row(summary, family, "full", "raw win rate")["vs_product"]
    assert diff + ci < 0, f"product - raw = {diff:.4f} ± {ci:.4f}"


def test_the_stated_probability_is_calibrated(summary: dict[str, Any]) -> None:
    checked = [c for c in summary["calibration"] if c["worlds"] >= MIN_BIN]
    assert len(checked) >= 4
    for c in checked:
        assert abs(c["stated"] - c["observed"]) <= 0.1, c


def test_the_product_picks_within_delta_at_the_full_budget(summary: dict[str, Any]) -> None:
    for family in FAMILIES:
        assert _row(summary, family, "full", "product")["within"] >= 0.85, family
