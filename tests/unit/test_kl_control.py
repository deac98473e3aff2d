"""The adaptive KL controller on synthetic KL values."""

from __future__ import annotations

from itertools import pairwise

import pytest

from training.kl_control import AdaptiveKLController, FixedKLController, make_controller


def test_coefficient_rises_when_kl_above_target() -> None:
    ctl = AdaptiveKLController(value=0.1, target=6.0, horizon=100)
    # error = 7/6 - 1 = 1/6; beta *= 1 + (1/6) * 10/100
    assert ctl.update(7.0, 10) == pytest.approx(0.1 * (1 + (1 / 6) * 0.1))


def test_coefficient_falls_when_kl_below_target() -> None:
    ctl = AdaptiveKLController(value=0.1, target=6.0, horizon=100)
    # error = 5/6 - 1 = -1/6
    assert ctl.update(5.0, 10) == pytest.approx(0.1 * (1 - (1 / 6) * 0.1))


def test_error_is_clipped_both_ways() -> None:
    up = AdaptiveKLController(value=1.0, target=1.0, horizon=10)
    assert up.update(100.0, 10) == pytest.approx(1.2)
    down = AdaptiveKLController(value=1.0, target=1.0, horizon=10)
    assert down.update(-50.0, 10) == pytest.approx(0.8)


def test_sustained_high_kl_keeps_raising_and_on_target_holds() -> None:
    ctl = AdaptiveKLController(value=0.05, target=2.0, horizon=1000)
    values = [ctl.update(4.0, 64) for _ in range(5)]
    assert all(b > a for a, b in pairwise(values))
    steady = AdaptiveKLController(value=0.05, target=2.0, horizon=1000)
    assert steady.update(2.0, 64) == pytest.approx(0.05)


def test_fixed_controller_and_factory() -> None:
    assert FixedKLController(0.2).update(100.0, 8) == 0.2
    assert isinstance(
        make_controller(0.1, adaptive=True, target=1, horizon=1), AdaptiveKLController
    )
    assert isinstance(make_controller(0.1, adaptive=False, target=1, horizon=1), FixedKLController)
