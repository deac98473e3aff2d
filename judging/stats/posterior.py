"""How likely each checkpoint is to be the best: an empirical-Bayes posterior over the curve.

The joint bootstrap gives estimates x (n,) and their sampling covariance S (checkpoints judged
on the same prompts move together). Taken at face value, the resamples spread every estimate
around its own noisy value: when several checkpoints are truly alike their estimates are more
spread out than their true values, and P(within delta of the best) comes out too low; for a
lone leader picked for its luck it comes out too high. The fix is to say what the true values
look like before the votes: along a training run they follow a smooth curve in sqrt(KL) (Gao et
al. 2022 fit gold reward as d (alpha - beta d), d = sqrt(KL)), with deviations of unknown size:

    x = theta + e,   e ~ N(0, S)
    theta = X beta + u,   u ~ N(0, tau^2 I),   flat prior on beta

X has, per run, an intercept and (when the run has enough candidates with a known KL) d and d^2
columns; tau^2 is estimated by moments from the residuals of the curve (at least `floor`^2).
The posterior of theta is Gaussian (Henderson's mixed-model equations); its mean ranks the
candidates and its draws give P(best), P(within delta) and the expected regret.

Pure numpy; the draws come from the generator passed in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

CURVE_MIN_POINTS = 5
"""A run gets curve terms (d, d^2) only with at least this many candidates: with fewer, three
parameters leave almost nothing to estimate the deviations from."""


def curve_design(runs: Sequence[str], kl: Sequence[float | None]) -> Array:
    """(n, p) prior design: per run an intercept, plus sqrt(KL) and KL columns when the run has
    `CURVE_MIN_POINTS` candidates with known KL (each scaled to at most 1 within its run)."""
    columns = []
    for run in dict.fromkeys(runs):
        mine = np.array([r == run for r in runs])
        columns.append(mine.astype(float))
        values = [kl[int(i)] for i in np.flatnonzero(mine)]
        if len(values) >= CURVE_MIN_POINTS and all(v is not None for v in values):
            d = np.zeros(len(runs))
            d[mine] = np.sqrt(np.maximum(np.asarray(values, dtype=float), 0.0))
            d /= max(float(d.max()), 1e-12)
            columns += [d, d**2]
    return np.column_stack(columns)


def deviation_variance(x: Array, cov: Array, design: Array, floor: float) -> float:
    """tau^2 by moments: E|r|^2 = tau^2 (n - p) + tr((I - H) S) for the least-squares residuals
    r = (I - H) x of the curve; `floor`^2 when the residuals leave no room for it."""
    n, p = design.shape
    if n <= p:
        return floor**2
    hat = design @ np.linalg.pinv(design)
    resid = x - hat @ x
    excess = float(resid @ resid) - float(np.trace((np.eye(n) - hat) @ cov))
    return float(max(excess / (n - p), floor**2))


def posterior(x: Array, cov: Array, design: Array, tau2: float) -> tuple[Array, Array]:
    """Posterior mean (n,) and covariance (n, n) of theta (Henderson's equations: the
    prediction-error covariance of (beta, u) is the inverse of their coefficient matrix)."""
    n = len(x)
    precision = np.linalg.inv(cov + 1e-12 * np.eye(n))
    xr = design.T @ precision
    coefficients = np.block([[xr @ design, xr], [xr.T, precision + np.eye(n) / tau2]])
    solved = np.linalg.solve(coefficients, np.concatenate([xr @ x, precision @ x]))
    link = np.hstack([design, np.eye(n)])
    mean = link @ solved
    covariance = link @ np.linalg.solve(coefficients, link.T)
    return mean, (covariance + covariance.T) / 2


def posterior_draws(
    mean: Array, covariance: Array, n_draws: int, rng: np.random.Generator
) -> Array:
    """(n_draws, n) Gaussian draws of theta."""
    values, vectors = np.linalg.eigh(covariance)
    root = vectors * np.sqrt(np.clip(values, 0.0, None))
    draws: Array = mean + rng.standard_normal((n_draws, len(mean))) @ root.T
    return draws
