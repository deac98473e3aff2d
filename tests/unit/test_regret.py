"""Selection regret maths, hand-checked."""

from __future__ import annotations

import math
import random

import pytest

from judging.analysis.regret import (
    argmax,
    gold_win_probability,
    gold_win_rate,
    regret,
    simulate_votes,
    summarise,
)
from judging.gold import RaterSpec


def test_gold_win_probability_averages_the_position_bias_out_at_zero_gap() -> None:
    spec = RaterSpec(temperature=0.1, position_bias=0.5)
    assert gold_win_probability(0.0, spec) == pytest.approx(0.5)
    s = 1 / (1 + math.exp(-1.5))
    t = 1 / (1 + math.exp(-0.5))
    assert gold_win_probability(0.1, spec) == pytest.approx(0.5 * (s + t))
    assert gold_win_rate([0.0, 10.0], spec) == pytest.approx(0.75, abs=1e-6)


def test_simulated_votes_match_the_gold_win_rate() -> None:
    spec = RaterSpec(temperature=0.1, position_bias=0.3)
    gaps = {i: (0.1 if i % 2 else -0.05) for i in range(400)}
    votes = simulate_votes(gaps, spec, raters=5, rng=random.Random(0))
    assert len(votes) == 2000
    observed = sum(v.score for v in votes) / len(votes)
    assert observed == pytest.approx(gold_win_rate(list(gaps.values()), spec), abs=0.03)


def test_regret_is_a_share_of_the_gold_range() -> None:
    gold = {"a": 0.40, "b": 0.60, "c": 0.50}
    assert regret("b", gold) == 0.0
    assert regret("a", gold) == pytest.approx(1.0)
    assert regret("c", gold) == pytest.approx(0.5)
    assert regret("a", {"a": 0.5, "b": 0.5}) == 0.0
    rows = {r.rule: r for r in summarise({"x": ["b", "c"], "y": ["a", "a"]}, gold)}
    assert rows["x"].mean_regret == pytest.approx(0.25) and rows["x"].best_share == 0.5
    assert rows["y"].mean_regret == pytest.approx(1.0) and rows["y"].best_share == 0.0


def test_argmax() -> None:
    assert argmax({"a": None, "b": 0.2, "c": 0.2}) == "b"
    with pytest.raises(ValueError):
        argmax({"a": None})


def test_gold_preference_votes_count_a_tie_as_half() -> None:
    from judging.analysis.regret import gold_preference_votes
    from judging.stats.winrate import win_rate

    votes = gold_preference_votes([("a", 0.4, 0.1), ("b", 0.1, 0.4), ("c", 0.2, 0.2)])
    assert [(v.prompt_id, v.score) for v in votes] == [("a", 1.0), ("b", 0.0), ("c", 0.5)]
    assert win_rate(votes) == pytest.approx(0.5)
