"""The joint win-rate model: hand-computed cases, its least-squares optimality, and its
properties (prior, per-checkpoint slopes, prompt difficulty, the joint bootstrap)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from judging.stats.lc_winrate import (
    LCModel,
    LengthVote,
    joint_bootstrap,
    lc_win_rate,
    lc_win_rate_intervals,
    length_scale,
    nan_quantiles,
    vote_table,
)

NO_PRIOR = LCModel(virtual_ties=0.0)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_no_votes_no_rate() -> None:
    assert lc_win_rate([]) is None
    assert lc_win_rate_intervals({1: []}) == {}
    assert joint_bootstrap({}) is None


def test_equal_lengths_give_the_raw_rate_without_the_prior() -> None:
    votes = [LengthVote(i, s, 0.0) for i, s in enumerate([1.0, 1.0, 1.0, 0.0])]
    assert lc_win_rate(votes, NO_PRIOR) == pytest.approx(0.75, abs=1e-6)


def test_the_prior_is_virtual_ties_in_prompts() -> None:
    # 4 prompts, 3 won: (3 + c/2) / (4 + c) with c = 8 virtual ties -> 7/12.
    votes = [LengthVote(i, s, 0.0) for i, s in enumerate([1.0, 1.0, 1.0, 0.0])]
    assert lc_win_rate(votes, LCModel(virtual_ties=8.0)) == pytest.approx(7 / 12, abs=1e-6)


def test_each_judged_pair_weighs_one_however_many_raters() -> None:
    # Prompt 0 judged by three raters (all won), prompt 1 by one (lost): 1/2, not 3/4.
    votes = [LengthVote(0, 1.0, 0.0)] * 3 + [LengthVote(1, 0.0, 0.0)]
    assert lc_win_rate(votes, NO_PRIOR) == pytest.approx(0.5, abs=1e-6)


def test_length_scale_is_the_standard_deviation() -> None:
    assert length_scale([10.0, 20.0, 30.0]) == pytest.approx(10.0)
    assert length_scale([5.0]) == 1.0


def test_the_fit_is_the_penalised_least_squares_solution() -> None:
    """Against a dense solve of the same problem: y - 1/2 = d_p + a_k + (b + b_k) x."""
    rng = random.Random(3)
    groups = {
        k: [LengthVote(p, rng.choice([0.0, 0.5, 1.0]), rng.uniform(-300, 400)) for p in range(30)]
        for k in range(3)
    }
    model = LCModel(virtual_ties=4.0, prompt_ridge=2.0, slope_ridge=5.0, shared_slope_ridge=1.0)
    fitted = joint_bootstrap(groups, n_boot=2, model=model)
    table = vote_table(groups)
    assert fitted is not None and table is not None
    n_p, n_k = table.shape
    rows = len(table.x)
    # Columns: a_k (K), b_k (K), b, d_p (P); the prior adds K rows a_k = 0 weighted c.
    design = np.zeros((rows, 2 * n_k + 1 + n_p))
    design[np.arange(rows), table.column] = 1
    design[np.arange(rows), n_k + table.column] = table.x
    design[:, 2 * n_k] = table.x
    design[np.arange(rows), 2 * n_k + 1 + table.prompt] = 1
    y = table.score / table.votes - 0.5
    penalty = np.r_[[4.0] * n_k, [5.0] * n_k, 1.0, [2.0] * n_p]
    w = table.weight
    # The prompt effects are centred: a Lagrange row sum_p d_p = 0.
    width = design.shape[1]
    kkt = np.zeros((width + 1, width + 1))
    kkt[:width, :width] = design.T @ (w[:, None] * design) + np.diag(penalty)
    kkt[width, 2 * n_k + 1 : width] = kkt[2 * n_k + 1 : width, width] = 1.0
    theta = np.linalg.solve(kkt, np.r_[design.T @ (w * y), 0.0])
    assert fitted.lc == pytest.approx(0.5 + theta[:n_k], abs=1e-9)


def _self_votes(n: int, seed: int) -> list[LengthVote]:
    """A model against itself: every (score, delta) comes with its mirror (1 - score, -delta)."""
    rng = random.Random(seed)
    votes = []
    for p in range(n):
        delta = rng.uniform(-400, 400)
        won = rng.random() < _sigmoid(2 * math.tanh(delta / 150))
        votes += [LengthVote(p, float(won), delta), LengthVote(p, 1.0 - won, -delta)]
    return votes


def test_a_model_against_itself_is_one_half() -> None:
    assert lc_win_rate(_self_votes(60, 1)) == pytest.approx(0.5, abs=1e-9)


def _length_votes(seed: int, quality: float, extra: float, bias: float, n: int = 200):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    out = []
    for p in range(n):
        delta = rng.gauss(extra, 150)
        won = rng.random() < _sigmoid(quality + bias * math.tanh(delta / 150))
        out += [LengthVote(p, float(won), delta)] * 2
    return out


def test_a_length_hacker_loses_its_raw_advantage_once_length_is_controlled() -> None:
    hacker = _length_votes(1, -0.3, 400.0, 2.0)
    honest = _length_votes(2, 0.3, 0.0, 2.0)
    fitted = joint_bootstrap({"hacker": hacker, "honest": honest}, n_boot=50)
    assert fitted is not None
    h, o = fitted.column("hacker"), fitted.column("honest")
    assert fitted.raw[h] > fitted.raw[o] + 0.1  # raters paid for length
    assert fitted.lc[h] < fitted.lc[o]  # at equal length the honest one is better
    assert fitted.lc[h] < fitted.raw[h] - 0.1


def test_a_checkpoint_whose_votes_ignore_length_keeps_its_raw_rate() -> None:
    """Slopes per checkpoint (shrunk to a shared one): a checkpoint whose raters ignored length
    is not corrected for the length taste seen in another checkpoint's votes. With one slope
    shared by all (the model before), its LC moved by the other's slope."""
    biased = _length_votes(3, 0.0, 0.0, 3.0, n=300)
    indifferent = _length_votes(4, 0.4, 150.0, 0.0, n=300)
    fitted = joint_bootstrap({"biased": biased, "indifferent": indifferent}, n_boot=20)
    assert fitted is not None
    k = fitted.column("indifferent")
    shared_only = joint_bootstrap(
        {"biased": biased, "indifferent": indifferent}, n_boot=20,
        model=LCModel(slope_ridge=1e9),
    )  # fmt: skip
    assert shared_only is not None
    moved_shared = fitted.raw[k] - shared_only.lc[k]
    moved_own = abs(fitted.raw[k] - fitted.lc[k])
    assert moved_shared > 0.15  # one shared slope blamed its length for the other's taste
    assert moved_own < 0.4 * moved_shared


def test_prompt_difficulty_adjusts_for_the_prompts_a_checkpoint_got() -> None:
    """A and B are equally good, but B was judged only on the hard half of the prompts: its raw
    rate is low, its adjusted rate (prompt difficulty learned from A) is not."""
    rng = random.Random(5)
    hard = {p: p < 100 for p in range(200)}
    a, b = [], []
    for p in range(200):
        for _ in range(2):
            a.append(LengthVote(p, float(rng.random() < (0.3 if hard[p] else 0.8)), 0.0))
            if hard[p]:
                b.append(LengthVote(p, float(rng.random() < 0.3), 0.0))
    fitted = joint_bootstrap({"a": a, "b": b}, n_boot=20, model=LCModel(prompt_ridge=0.1))
    assert fitted is not None
    ia, ib = fitted.column("a"), fitted.column("b")
    raw_gap = fitted.raw[ia] - fitted.raw[ib]
    adjusted_gap = abs(fitted.adjusted[ia] - fitted.adjusted[ib])
    assert raw_gap > 0.2
    # The ridge shrinks each prompt's difficulty (one checkpoint saw the easy half), so the
    # adjustment is partial, but most of the gap the prompts made goes.
    assert adjusted_gap < 0.25 * raw_gap


def test_intervals_never_collapse_on_a_sweep_one_prompt_or_all_ties() -> None:
    cases = {
        "sweep": [LengthVote(p, 1.0, 0.0) for p in range(10) for _ in range(2)],
        "one prompt": [LengthVote(0, 1.0, 0.0), LengthVote(0, 0.0, 0.0)],
        "ties": [LengthVote(p, 0.5, 0.0) for p in range(30)],
    }
    for name, votes in cases.items():
        interval = lc_win_rate_intervals({name: votes}, n_boot=400)[name]
        assert interval.high - interval.low > 0.1, name
        assert interval.low <= interval.estimate <= interval.high


def test_a_sparse_sweep_is_pulled_towards_one_half() -> None:
    sweep = [LengthVote(p, 1.0, 0.0) for p in range(10) for _ in range(2)]
    assert lc_win_rate(sweep) == pytest.approx(0.5 + 0.5 * 10 / 18, abs=1e-6)


def test_joint_draws_share_the_prompts_and_are_reproducible() -> None:
    a = _length_votes(7, 0.5, 0.0, 0.0)
    b = [LengthVote(v.prompt_id, v.score, v.length_diff) for v in a]  # identical twin
    first = joint_bootstrap({"a": a, "b": b}, n_boot=200, seed=3)
    second = joint_bootstrap({"a": a, "b": b}, n_boot=200, seed=3)
    assert first is not None and second is not None
    assert np.array_equal(first.lc_draws, second.lc_draws)
    # Same prompts in every resample: the raw draws of twins are identical.
    assert np.array_equal(first.raw_draws[:, 0], first.raw_draws[:, 1])


def test_nan_quantiles_match_numpy() -> None:
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(101, 3))
    draws[:40, 1] = np.nan
    draws[:, 2] = np.nan
    got = nan_quantiles(draws, (0.025, 0.5, 0.975))
    for col in (0, 1):
        assert got[:, col] == pytest.approx(np.nanquantile(draws[:, col], [0.025, 0.5, 0.975]))
    assert np.isnan(got[:, 2]).all()
