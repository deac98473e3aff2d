"""Length-controlled win rate: hand-computed cases, the MLE's optimality, and its properties."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Hashable

import pytest

from judging.stats.lc_winrate import (
    INTERCEPT_L2,
    LENGTH_L2,
    LengthVote,
    _loglik,
    _rows_by_prompt,
    fit_length_model,
    fit_shared_length_model,
    fit_shared_rows,
    joint_bootstrap,
    lc_win_rate,
    lc_win_rate_interval,
    lc_win_rate_intervals,
    length_scale,
    sigmoid,
)
from judging.stats.winrate import Vote, win_rate


def test_no_votes_no_rate() -> None:
    assert lc_win_rate([]) is None
    assert lc_win_rate_interval([]) is None


def test_equal_lengths_give_the_raw_rate() -> None:
    # Every pair equally long: tanh(0) = 0, so the slope has no data and LC is the raw rate.
    votes = [LengthVote(i, s, 0.0) for i, s in enumerate([1.0, 1.0, 1.0, 0.0])]
    fit = fit_length_model(votes)
    assert fit is not None
    assert fit.slope == pytest.approx(0.0, abs=1e-9)
    assert fit.lc_win_rate == pytest.approx(0.75, abs=1e-4)


def test_length_scale_is_the_standard_deviation() -> None:
    votes = [LengthVote(i, 1.0, d) for i, d in enumerate([10.0, 20.0, 30.0])]
    assert length_scale(votes) == pytest.approx(10.0)
    assert length_scale([LengthVote(0, 1.0, 5.0)]) == 1.0  # degenerate: one vote


def test_fit_is_the_penalised_maximum_likelihood() -> None:
    rng = random.Random(4)
    votes = [
        LengthVote(i, rng.choice([0.0, 0.5, 1.0, 1.0]), rng.uniform(-300, 500)) for i in range(40)
    ]
    fit = fit_length_model(votes)
    assert fit is not None
    rows = [r for g in _rows_by_prompt(votes, fit.scale).values() for r in g]

    def ll(a: float, b: float) -> float:
        return _loglik(rows, a, b, INTERCEPT_L2, LENGTH_L2)

    h = 1e-5  # numerical gradient vanishes at the optimum, and every neighbour is lower
    best = ll(fit.intercept, fit.slope)
    assert (ll(fit.intercept + h, fit.slope) - ll(fit.intercept - h, fit.slope)) / (2 * h) == (
        pytest.approx(0.0, abs=1e-5)
    )
    assert (ll(fit.intercept, fit.slope + h) - ll(fit.intercept, fit.slope - h)) / (2 * h) == (
        pytest.approx(0.0, abs=1e-5)
    )
    for da, db in [(0.05, 0), (-0.05, 0), (0, 0.05), (0, -0.05)]:
        assert ll(fit.intercept + da, fit.slope + db) < best


def _self_votes(n: int, seed: int) -> list[LengthVote]:
    """A model against itself: every (score, delta) has its mirror (1 - score, -delta)."""
    rng = random.Random(seed)
    votes = []
    for p in range(n):
        delta = rng.uniform(-400, 400)
        longer_wins = rng.random() < sigmoid(2.0 * math.tanh(delta / 200))
        score = 1.0 if longer_wins else 0.0
        votes += [LengthVote(p, score, delta), LengthVote(p, 1.0 - score, -delta)]
    return votes


def test_a_model_against_itself_is_exactly_one_half() -> None:
    votes = _self_votes(60, seed=1)
    fit = fit_length_model(votes)
    assert fit is not None
    assert fit.lc_win_rate == pytest.approx(0.5, abs=1e-9)
    assert fit.slope > 0.5  # the longer answer does win, the model just is not better than itself
    ties = [LengthVote(p, 0.5, 0.0) for p in range(10)]  # identical texts judged as ties
    assert lc_win_rate(ties) == pytest.approx(0.5, abs=1e-9)


def _length_hacker(n: int, seed: int, quality: float = 0.0) -> list[LengthVote]:
    """Longer 80% of the time; raters prefer length, plus `quality` log-odds of real merit."""
    rng = random.Random(seed)
    votes = []
    for p in range(n):
        delta = rng.uniform(50, 600) if rng.random() < 0.8 else -rng.uniform(50, 600)
        win = rng.random() < sigmoid(quality + 2.5 * math.tanh(delta / 250))
        for _ in range(2):  # two raters, agreeing
            votes.append(LengthVote(p, 1.0 if win else 0.0, delta))
    return votes


def test_wins_explained_by_length_move_toward_one_half_and_the_raw_rate_does_not() -> None:
    votes = _length_hacker(300, seed=2)
    raw = win_rate([Vote(v.prompt_id, v.score) for v in votes])
    lc = lc_win_rate(votes)
    assert raw is not None and lc is not None
    assert raw > 0.7
    assert abs(lc - 0.5) < 0.08
    assert abs(lc - 0.5) < 0.3 * abs(raw - 0.5)


def test_a_better_model_keeps_its_advantage_once_length_is_controlled() -> None:
    lc_good = lc_win_rate(_length_hacker(300, seed=3, quality=1.2))
    assert lc_good is not None
    assert lc_good == pytest.approx(sigmoid(1.2), abs=0.08)


def test_interval_contains_estimate_shrinks_and_is_reproducible() -> None:
    small = lc_win_rate_interval(_length_hacker(40, seed=5), n_boot=300, seed=1)
    large = lc_win_rate_interval(_length_hacker(640, seed=5), n_boot=300, seed=1)
    assert small is not None and large is not None
    assert small.low <= small.estimate <= small.high
    assert (large.high - large.low) < 0.5 * (small.high - small.low)
    assert small.n_clusters == 40 and small.n_votes == 80
    again = lc_win_rate_interval(_length_hacker(40, seed=5), n_boot=300, seed=1)
    assert again == small


def test_shared_slope_pins_down_a_checkpoint_that_is_always_longer() -> None:
    # A checkpoint longer on every prompt says little about zero difference on its own; the other
    # checkpoint, whose lengths vary around the base's, identifies the raters' length slope.
    rng = random.Random(8)

    def votes(mean: float, quality: float) -> list[LengthVote]:
        out = []
        for p in range(150):
            delta = rng.gauss(mean, 120)
            won = rng.random() < sigmoid(quality + 2.0 * math.tanh(delta / 200))
            out += [LengthVote(p, float(won), delta)] * 2
        return out

    groups = {"hacker": votes(500.0, -0.5), "plain": votes(0.0, 0.5)}
    shared = lc_win_rate_intervals(groups, n_boot=300, seed=2)
    alone = lc_win_rate_interval(groups["hacker"], n_boot=300, seed=2)
    assert alone is not None
    hacker = shared["hacker"]
    # Alone, slope and intercept are collinear (tanh(delta/s) is ~1 on every vote): the fit puts
    # the length effect into the intercept and the "LC" rate stays near the raw one, far too high.
    assert alone.low > sigmoid(-0.5) + 0.2
    assert hacker.low < sigmoid(-0.5) < hacker.high
    assert shared["plain"].low < sigmoid(0.5) < shared["plain"].high
    assert hacker.n_votes == 300 and hacker.n_clusters == 150


def test_shared_fit_of_a_model_against_itself_is_one_half() -> None:
    fit = fit_shared_length_model({"self": _self_votes(50, seed=4), "none": []})
    assert fit is not None and set(fit.intercepts) == {"self"}
    assert fit.lc_win_rate("self") == pytest.approx(0.5, abs=1e-9)
    assert lc_win_rate_intervals({}) == {}


def _exact_joint_lc(
    groups: dict[Hashable, list[LengthVote]], n_boot: int, seed: int
) -> dict[Hashable, list[float | None]]:
    """The joint bootstrap written plainly: rows rebuilt per resample, each refit to 1e-12."""
    fit = fit_shared_length_model(groups)
    assert fit is not None
    clusters = {k: _rows_by_prompt(vs, fit.scale) for k, vs in groups.items() if vs}
    keys = sorted({p for c in clusters.values() for p in c}, key=repr)
    rng = random.Random(seed)
    out: dict[Hashable, list[float | None]] = {k: [] for k in clusters}
    for _ in range(n_boot):
        counts = Counter(rng.choices(keys, k=len(keys)))
        drawn = {
            k: [(x, s * m, w * m) for p, m in counts.items() for x, s, w in c.get(p, ())]
            for k, c in clusters.items()
        }
        present = {k: rows for k, rows in drawn.items() if rows}
        a, _b = fit_shared_rows(present, (fit.intercepts, fit.slope), tol=1e-12)
        for k in clusters:
            out[k].append(sigmoid(a[k]) if k in present else None)
    return out


def _study(seed: int, prompts: int = 60) -> dict[Hashable, list[LengthVote]]:
    """Three checkpoints, one always longer than the reference (slope and intercept collinear),
    one with sparse prompts (absent from some resamples), two raters who disagree at times."""
    rng = random.Random(seed)
    out: dict[Hashable, list[LengthVote]] = {"plain": [], "hacker": [], "sparse": []}
    for p in range(prompts):
        for name, mean, quality in (("plain", 0.0, 0.3), ("hacker", 400.0, -0.4)):
            delta = rng.gauss(mean, 150)
            for _rater in range(2):
                won = rng.random() < sigmoid(quality + 1.5 * math.tanh(delta / 200))
                out[name].append(LengthVote(p, rng.choice([float(won), float(won), 0.5]), delta))
        if p < 2:
            out["sparse"].append(LengthVote(p, rng.choice([0.0, 1.0]), rng.gauss(50, 100)))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_joint_bootstrap_agrees_with_refits_to_1e_12(seed: int) -> None:
    # Stated tolerance: every resample's LC rate within 1e-6 of the exact refit (the Newton
    # stopping rule leaves ~step^2), so every interval endpoint is too.
    groups = _study(seed)
    draws = joint_bootstrap(groups, n_boot=200, seed=seed)
    assert draws is not None
    exact = _exact_joint_lc(groups, 200, seed)
    for k, column in exact.items():
        for fast, slow in zip(draws.lc[k], column, strict=True):
            assert (fast is None) == (slow is None)
            if fast is not None and slow is not None:
                assert fast == pytest.approx(slow, abs=1e-6)
    assert any(v is None for v in exact["sparse"])  # the absent case is exercised


def test_a_warm_start_changes_nothing_beyond_the_tolerance() -> None:
    groups = _study(4)
    cold = joint_bootstrap(groups, n_boot=100, seed=4)
    assert cold is not None
    # One more verdict: the next bootstrap starts from this one's solutions.
    more = {**groups, "plain": [*groups["plain"], LengthVote(0, 1.0, 10.0)]}
    warm = joint_bootstrap(more, n_boot=100, seed=4, warm=cold.solutions)
    fresh = joint_bootstrap(more, n_boot=100, seed=4)
    assert warm is not None and fresh is not None
    for k in fresh.lc:
        for w, f in zip(warm.lc[k], fresh.lc[k], strict=True):
            assert (w is None) == (f is None)
            if w is not None and f is not None:
                assert w == pytest.approx(f, abs=1e-6)
    assert warm.lc != cold.lc  # and the new verdict did move the draws
