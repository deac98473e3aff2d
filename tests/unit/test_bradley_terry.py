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


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


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


def test_solve_takes_a_stack_of_systems() -> None:
    matrices = [[[2.0, 1.0], [1.0, 3.0]], [[4.0, 0.0], [0.0, 0.5]]]
    out = solve(matrices, [[3.0, 5.0], [2.0, 1.0]])
    assert out.shape == (2, 2)
    assert out[0] == pytest.approx([0.8, 1.4]) and out[1] == pytest.approx([0.5, 2.0])


def test_win_probability_is_the_sigmoid_of_the_strength() -> None:
    votes = [PairVote(i, "A", "base", s) for i, s in enumerate([1, 1, 1, 0])]
    strength = bradley_terry_intervals(votes, anchor="base", virtual_ties=0.0, n_boot=50)["A"]
    assert strength.estimate == pytest.approx(math.log(3))
    assert strength.win_probability == pytest.approx(0.75)


def test_strengths_chain_through_a_shared_checkpoint() -> None:
    # Study 1: A against the base, 3 of 4. Study 2: B against A, 1 of 3 (no vote of B vs base).
    votes = [PairVote(i, "A", "base", s) for i, s in enumerate([1, 1, 1, 0])]
    votes += [PairVote(10 + i, "A", "B", s) for i, s in enumerate([0, 1, 1])]  # A's side
    fit = fit_bradley_terry(votes, anchor="base", virtual_ties=0.0)
    assert fit["A"] == pytest.approx(math.log(3), abs=1e-9)
    assert fit["B"] - fit["A"] == pytest.approx(_logit(1 / 3), abs=1e-9)


def test_a_clean_sweep_without_the_prior_has_no_finite_strength() -> None:
    sweep = [PairVote(i, "A", "base", 1.0) for i in range(5)]
    with pytest.raises(ValueError, match="every vote"):
        fit_bradley_terry(sweep, anchor="base", virtual_ties=0.0)
    # B's wins and losses are finite, but A beat B and the base on every vote.
    group = [
        PairVote(0, "B", "base", 1.0),
        PairVote(1, "B", "base", 0.0),
        PairVote(2, "A", "B", 1.0),
    ]
    with pytest.raises(ValueError, match="every vote"):
        fit_bradley_terry([*group, PairVote(3, "base", "A", 0.0)], anchor="base", virtual_ties=0.0)
    assert fit_bradley_terry([*group, PairVote(3, "base", "A", 0.5)], anchor="base", virtual_ties=0)


def test_bootstrap_values_are_the_star_designs_closed_form_per_resample() -> None:
    # Two prompts; A wins on 0 and loses on 1, B ties on 0 and wins on 1; one virtual tie.
    # Resamples {0,0}, {0,1}, {1,1} (probabilities 1/4, 1/2, 1/4) give
    # A: logit(2.5/3) = log 5, logit(1.5/3) = 0, logit(0.5/3) = -log 5;
    # B: logit(1.5/3) = 0, logit(2/3) = log 2, logit(2.5/3) = log 5.
    votes = [PairVote(0, "A", "base", 1.0), PairVote(1, "A", "base", 0.0)]
    votes += [PairVote(0, "B", "base", 0.5), PairVote(1, "base", "B", 0.0)]
    out = bradley_terry_intervals(votes, anchor="base", n_boot=1000, seed=4)
    assert out["A"].estimate == pytest.approx(0.0, abs=1e-12)
    assert (out["A"].low, out["A"].high) == pytest.approx((-math.log(5), math.log(5)), abs=1e-9)
    assert out["B"].estimate == pytest.approx(math.log(2), abs=1e-12)
    assert (out["B"].low, out["B"].high) == pytest.approx((0.0, math.log(5)), abs=1e-9)
    assert (out["base"].low, out["base"].high) == (0.0, 0.0)


def test_resamples_without_finite_strengths_are_dropped() -> None:
    # No prior; A wins on prompt 0 and loses on 1: {0,0} and {1,1} are sweeps with no finite
    # strength, so only {0,1} survives and the interval is its strength, 0.
    votes = [PairVote(0, "A", "base", 1.0), PairVote(1, "A", "base", 0.0)]
    out = bradley_terry_intervals(votes, anchor="base", virtual_ties=0.0, n_boot=300)
    assert (out["A"].low, out["A"].estimate, out["A"].high) == pytest.approx((0, 0, 0), abs=1e-9)


def test_one_cluster_resamples_to_itself_in_a_general_design() -> None:
    # Every vote on one prompt: each resample is the full sample, so every interval is the fit.
    rng = random.Random(3)
    names = ["base", "A", "B", "C", "D"]
    votes = [PairVote("p", *rng.sample(names, 2), rng.choice([0.0, 0.5, 1.0])) for _ in range(80)]
    fit = fit_bradley_terry(votes, anchor="base")
    out = bradley_terry_intervals(votes, anchor="base", n_boot=20)
    for name in names:
        assert out[name].estimate == fit[name]
        assert out[name].low == pytest.approx(fit[name], abs=1e-8)
        assert out[name].high == pytest.approx(fit[name], abs=1e-8)


def test_intervals_are_reproducible_by_seed_and_plain_floats() -> None:
    votes = [
        PairVote(p, c, "base", float((p * 7 + len(c)) % 3 > 0)) for p in range(30) for c in "AB"
    ]
    first = bradley_terry_intervals(votes, anchor="base", n_boot=200, seed=7)
    assert first == bradley_terry_intervals(votes, anchor="base", n_boot=200, seed=7)
    assert first != bradley_terry_intervals(votes, anchor="base", n_boot=200, seed=8)
    assert all(type(v) is float for s in first.values() for v in (s.estimate, s.low, s.high))


def test_no_votes_leave_only_the_anchor() -> None:
    out = bradley_terry_intervals([], anchor="base", n_boot=10)
    assert list(out) == ["base"] and out["base"].estimate == 0.0
