"""Bradley-Terry strengths: the star design's closed form, general MLE, and bootstrap intervals."""

from __future__ import annotations

import math
import random

import pytest

from judging.stats.bradley_terry import (
    PairVote,
    bradley_terry_intervals,
    fit_bradley_terry,
    solve,
)
from judging.stats.lc_winrate import sigmoid


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_solve_small_system() -> None:
    assert solve([[2.0, 1.0], [1.0, 3.0]], [3.0, 5.0]) == pytest.approx([0.8, 1.4])
    with pytest.raises(ValueError, match="not connected"):
        solve([[0.0, 0.0], [0.0, 1.0]], [1.0, 1.0])


def test_star_design_is_the_logit_of_the_win_rate_against_the_base() -> None:
    # A: 3 wins, 1 loss; B: 1 win, 1 tie, 2 losses; all against the base.
    votes = [PairVote(i, "A", "base", s) for i, s in enumerate([1, 1, 1, 0])]
    votes += [PairVote(i, "B", "base", s) for i, s in enumerate([1, 0.5, 0, 0])]
    plain = fit_bradley_terry(votes, anchor="base", virtual_ties=0.0)
    assert plain["base"] == 0.0
    assert plain["A"] == pytest.approx(math.log(3), abs=1e-7)
    assert plain["B"] == pytest.approx(_logit(1.5 / 4), abs=1e-7)
    prior = fit_bradley_terry(votes, anchor="base", virtual_ties=1.0)
    assert prior["A"] == pytest.approx(_logit(3.5 / 5), abs=1e-7)  # one virtual tie
    # A vote recorded from the base's side means the same thing.
    flipped = [PairVote(v.prompt_id, v.b, v.a, 1 - v.score) for v in votes]
    assert fit_bradley_terry(flipped, anchor="base", virtual_ties=0.0)["A"] == pytest.approx(
        math.log(3), abs=1e-7
    )


def test_general_design_recovers_true_strengths() -> None:
    truth = {"base": 0.0, "A": 1.0, "B": -0.5, "C": 0.4}
    rng = random.Random(0)
    names = list(truth)
    votes = []
    for p in range(6000):
        a, b = rng.sample(names, 2)
        votes.append(PairVote(p, a, b, 1.0 if rng.random() < sigmoid(truth[a] - truth[b]) else 0.0))
    fit = fit_bradley_terry(votes, anchor="base")
    for name, value in truth.items():
        assert fit[name] == pytest.approx(value, abs=0.12)


def test_gradient_vanishes_at_the_fit() -> None:
    votes = [
        PairVote(0, "A", "base", 1.0),
        PairVote(1, "A", "B", 0.5),
        PairVote(2, "B", "base", 0.0),
        PairVote(3, "B", "A", 1.0),
        PairVote(4, "A", "base", 0.0),
    ]
    fit = fit_bradley_terry(votes, anchor="base", virtual_ties=0.0)
    for item in ("A", "B"):
        grad = 0.0
        for v in votes:
            p = sigmoid(fit[v.a] - fit[v.b])
            if v.a == item:
                grad += v.score - p
            elif v.b == item:
                grad -= v.score - p
        assert grad == pytest.approx(0.0, abs=1e-8)


def test_a_clean_sweep_stays_finite_with_the_prior_and_disconnection_is_an_error() -> None:
    sweep = [PairVote(i, "A", "base", 1.0) for i in range(5)]
    assert fit_bradley_terry(sweep, anchor="base")["A"] == pytest.approx(_logit(5.5 / 6))
    island = [PairVote(0, "A", "base", 0.5), PairVote(1, "X", "Y", 1.0)]
    with pytest.raises(ValueError, match="not connected"):
        fit_bradley_terry(island, anchor="base", virtual_ties=0.0)


def test_intervals_cover_the_estimate_and_shrink_with_more_prompts() -> None:
    def votes(n: int) -> list[PairVote]:
        rng = random.Random(9)
        out = []
        for p in range(n):
            for item, strength in (("A", 0.8), ("B", 0.0)):
                won = rng.random() < sigmoid(strength)
                out += [PairVote(p, item, "base", float(won))] * 2  # two agreeing raters
        return out

    small = bradley_terry_intervals(votes(40), anchor="base", n_boot=200, seed=1)
    large = bradley_terry_intervals(votes(640), anchor="base", n_boot=200, seed=1)
    for item in ("A", "B"):
        assert small[item].low <= small[item].estimate <= small[item].high
        assert (large[item].high - large[item].low) < 0.5 * (small[item].high - small[item].low)
    assert small["base"].low == small["base"].high == 0.0
    assert large["A"].low > large["B"].high  # 640 prompts separate 0.8 from 0
