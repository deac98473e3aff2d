"""The empirical-Bayes posterior over a run's curve: hand-computed normal-normal cases."""

from __future__ import annotations

import numpy as np
import pytest

from judging.stats.posterior import (
    curve_design,
    deviation_variance,
    posterior,
    posterior_draws,
)


def test_intercept_only_with_equal_variances_is_classic_shrinkage() -> None:
    """x_i ~ N(theta_i, s), theta_i = mu + u_i, u ~ N(0, tau2), flat mu: the posterior mean is
    mean(x) + tau2 / (tau2 + s) (x_i - mean(x)), and the variance adds mu's uncertainty:
    tau2 s / (tau2 + s) + (s / (tau2 + s))^2 (tau2 + s) / n."""
    x = np.array([0.50, 0.55, 0.62, 0.58])
    s, tau2, n = 0.002, 0.001, 4
    mean, cov = posterior(x, s * np.eye(n), np.ones((n, 1)), tau2)
    shrink = tau2 / (tau2 + s)
    assert mean == pytest.approx(x.mean() + shrink * (x - x.mean()))
    expected = tau2 * s / (tau2 + s) + (s / (tau2 + s)) ** 2 * (tau2 + s) / n
    assert np.diag(cov) == pytest.approx(np.full(n, expected))


def test_a_noisier_estimate_is_pulled_harder_towards_the_curve() -> None:
    x = np.array([0.50, 0.55, 0.60, 0.80, 0.70])
    noise = np.diag([0.001, 0.001, 0.001, 0.02, 0.001])  # the fourth: judged on few prompts
    design = curve_design(["run"] * 5, [1.0, 2.0, 3.0, 4.0, 5.0])
    mean, _ = posterior(x, noise, design, tau2=0.0005)
    assert abs(mean[3] - x[3]) > 5 * abs(mean[4] - x[4])
    assert mean[3] < 0.72


def test_curve_design_has_an_intercept_per_run_and_curve_terms_only_with_enough_points() -> None:
    runs = ["a"] * 5 + ["b"] * 3
    kl = [1.0, 4.0, 9.0, 16.0, 25.0, 1.0, 2.0, 3.0]
    design = curve_design(runs, kl)
    assert design.shape == (8, 4)  # a: 1, d, d^2; b: 1
    assert design[:5, 1] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert design[5:, :3].sum() == 0 and design[5:, 3] == pytest.approx(np.ones(3))
    assert curve_design(runs, [None] * 8).shape == (8, 2)


def test_deviation_variance_recovers_tau2_on_average() -> None:
    rng = np.random.default_rng(0)
    design = np.column_stack([np.ones(8), np.linspace(0, 1, 8)])
    tau2, s = 0.0009, 0.0004
    estimates = []
    for _ in range(4000):
        theta = design @ np.array([0.5, 0.1]) + rng.normal(0, np.sqrt(tau2), 8)
        x = theta + rng.normal(0, np.sqrt(s), 8)
        estimates.append(deviation_variance(x, s * np.eye(8), design, floor=0.0))
    assert np.mean(estimates) == pytest.approx(tau2, rel=0.1)


def test_the_floor_holds_when_the_curve_explains_everything() -> None:
    design = np.column_stack([np.ones(6), np.arange(6.0)])
    x = design @ np.array([0.5, 0.01])
    assert deviation_variance(x, 1e-4 * np.eye(6), design, floor=0.01) == pytest.approx(1e-4)


def test_draws_have_the_posterior_moments() -> None:
    mean = np.array([0.6, 0.55])
    cov = np.array([[4e-4, 3e-4], [3e-4, 5e-4]])
    draws = posterior_draws(mean, cov, 200_000, np.random.default_rng(1))
    assert draws.mean(axis=0) == pytest.approx(mean, abs=2e-4)
    assert np.cov(draws, rowvar=False) == pytest.approx(cov, rel=0.03)
