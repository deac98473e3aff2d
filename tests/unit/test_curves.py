"""The divergence alarm and the Gao et al. curve fit."""

from __future__ import annotations

import math

import pytest

from judging.stats.divergence import CurvePoint, Estimate, divergence_alarms
from judging.stats.gao import fit_gao


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
