"""Paired test between two checkpoints, the divergence alarm, and the Gao et al. curve fit."""

from __future__ import annotations

import math
import random

import pytest

from judging.stats.divergence import CurvePoint, Estimate, divergence_alarms
from judging.stats.gao import fit_gao
from judging.stats.paired import paired_test, sign_flip_p_value
from judging.stats.winrate import Vote


def test_sign_flip_exact_hand_computed() -> None:
    # Three positive differences: only all-plus and all-minus reach |sum| = 3 of 8 patterns.
    assert sign_flip_p_value([1.0, 1.0, 1.0]) == (pytest.approx(2 / 8), True)
    # [1, 1, -1]: |sum| >= 1 for every pattern (sums are odd).
    assert sign_flip_p_value([1.0, 1.0, -1.0]) == (pytest.approx(1.0), True)


def test_paired_test_on_shared_prompts_only() -> None:
    a = [Vote(p, 1.0) for p in range(20)] + [Vote(99, 0.0)]  # prompt 99 only judged for A
    b = [Vote(p, 0.0 if p % 4 else 1.0) for p in range(20)]
    result = paired_test(a, b, n_boot=500)
    assert result is not None
    assert result.n_prompts == 20 and not result.exact
    assert result.a_rate == 1.0 and result.b_rate == pytest.approx(0.25)
    assert result.difference == pytest.approx(0.75)
    assert result.low > 0.4 and result.p_value < 0.001
    assert paired_test(a, [Vote(500, 1.0)]) is None


def test_identical_checkpoints_are_not_significant() -> None:
    rng = random.Random(3)
    scores = {p: rng.choice([0.0, 0.5, 1.0]) for p in range(30)}
    a = [Vote(p, s) for p, s in scores.items()]
    result = paired_test(a, list(a))
    assert result is not None
    assert result.difference == 0.0 and result.p_value == 1.0


def _pt(
    step: int, reward: tuple[float, float, float], win: tuple[float, float, float]
) -> CurvePoint:
    return CurvePoint(step, step, Estimate(*reward), Estimate(*win))


def test_divergence_alarm_needs_opposite_moves_beyond_both_intervals() -> None:
    points = [
        _pt(30, (1.5, 1.4, 1.6), (0.40, 0.33, 0.47)),  # reward up, humans down: alarm
        _pt(10, (0.5, 0.4, 0.6), (0.55, 0.50, 0.60)),
        _pt(20, (1.0, 0.9, 1.1), (0.60, 0.55, 0.65)),  # both up: no alarm
        _pt(40, (1.7, 1.55, 1.85), (0.30, 0.25, 0.35)),  # reward within its CI: no alarm
    ]
    alarms = divergence_alarms(points)
    assert [(a.before_step, a.after_step, a.kind) for a in alarms] == [
        (20, 30, "reward_up_humans_down")
    ]
    assert alarms[0].reward_change == pytest.approx(0.5)
    assert alarms[0].win_rate_change == pytest.approx(-0.2)
    missing = CurvePoint(50, 50, None, Estimate(0.1, 0.0, 0.2))
    assert divergence_alarms([*points, missing]) == alarms


def test_gao_fit_recovers_a_known_curve_and_its_peak() -> None:
    a, b = 0.3, 0.2
    kls = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    points = [(kl, 0.5 + math.sqrt(kl) * (a - b * math.log(math.sqrt(kl)))) for kl in kls]
    fit = fit_gao([(0.0, 0.5), *points], baseline=0.5)
    assert fit is not None
    assert fit.a == pytest.approx(a) and fit.b == pytest.approx(b)
    assert fit.peak_d == pytest.approx(math.exp(a / b - 1))
    assert fit.peak_kl == pytest.approx(math.exp(a / b - 1) ** 2)
    # The peak is the maximum of the curve.
    assert fit.peak_value >= max(fit.predict(d / 10) for d in range(1, 100)) - 1e-12
    assert fit.predict(0.0) == 0.5 and len(fit.curve(5.0, points=11)) == 11


def test_gao_fit_refuses_too_few_points_and_curves_without_a_peak() -> None:
    assert fit_gao([(1.0, 0.6), (4.0, 0.7)]) is None
    assert fit_gao([(0.0, 0.5), (0.0, 0.5), (1.0, 0.6), (4.0, 0.7)]) is None  # zero KL ignored
    rising = [(kl, 0.1 * kl) for kl in (1.0, 4.0, 9.0, 16.0)]  # grows faster than d: b < 0
    assert fit_gao(rising) is None


def _sign_flips_one_by_one(diffs: list[float], n_perm: int, seed: int) -> tuple[float, int]:
    """The Monte Carlo sign-flip test written plainly, one rng.random() per prompt."""
    rng = random.Random(seed)
    observed = abs(sum(diffs))
    eps = 1e-12 * max(1.0, observed)
    hits = 0
    for _ in range(n_perm):
        flipped = sum(d if rng.random() < 0.5 else -d for d in diffs)
        hits += abs(flipped) >= observed - eps
    return (hits + 1) / (n_perm + 1), rng.getrandbits(32)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_sign_flips_draw_the_same_signs_as_one_random_call_per_prompt(seed: int) -> None:
    # Same seed, same p-value, and the generator left in the same state (the paired bootstrap
    # draws from it next), on rater-mean differences and on arbitrary ones.
    rng = random.Random(100 + seed)
    quarters = [rng.choice([-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0]) for _ in range(150)]
    floats = [rng.gauss(0.05, 0.3) for _ in range(40)]
    for diffs in (quarters, floats):
        expected, next_word = _sign_flips_one_by_one(diffs, 2000, seed)
        mine = random.Random(seed)
        assert sign_flip_p_value(diffs, 2000, mine) == (expected, False)
        assert mine.getrandbits(32) == next_word
