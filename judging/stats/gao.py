"""Gao et al. (2022) over-optimisation curve: gold score against d = sqrt(KL) for RL.

R(d) = d (a - b log d), with R the gain over the initial policy (win rate - 0.5 against the base,
or a gold reward minus the base's). It is linear in (a, b) with features d and -d log d, so the
least-squares fit is a 2x2 normal-equation solve. The curve peaks where a - b log d - b = 0:
d* = exp(a / b - 1), with R(d*) = b d*; the KL budget that maximises the gold score is d*^2.
A curve without a peak (b <= 0) or fewer than three points with positive KL gives no fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_POINTS = 3


@dataclass(frozen=True)
class GaoFit:
    a: float
    b: float
    baseline: float
    """Added back to R(d) for plotting (0.5 for a win rate against the base)."""
    n_points: int

    @property
    def peak_d(self) -> float:
        return math.exp(self.a / self.b - 1)

    @property
    def peak_kl(self) -> float:
        return self.peak_d**2

    @property
    def peak_value(self) -> float:
        return self.baseline + self.b * self.peak_d

    def predict(self, d: float) -> float:
        """The fitted score at d = sqrt(KL) (baseline included)."""
        if d <= 0:
            return self.baseline
        return self.baseline + d * (self.a - self.b * math.log(d))

    def curve(self, d_max: float, points: int = 50) -> list[tuple[float, float]]:
        """(d, value) samples from 0 to d_max, for plotting."""
        return [
            (d_max * k / (points - 1), self.predict(d_max * k / (points - 1)))
            for k in range(points)
        ]


def fit_gao(points: Sequence[tuple[float, float]], *, baseline: float = 0.0) -> GaoFit | None:
    """Least-squares fit of (KL, score) points; None with < 3 positive-KL points or no peak."""
    rows = [(math.sqrt(kl), y - baseline) for kl, y in points if kl > 0]
    if len(rows) < MIN_POINTS:
        return None
    # Features u = d and v = -d log d; normal equations for y = a u + b v.
    suu = suv = svv = suy = svy = 0.0
    for d, y in rows:
        u, v = d, -d * math.log(d)
        suu += u * u
        suv += u * v
        svv += v * v
        suy += u * y
        svy += v * y
    det = suu * svv - suv * suv
    if abs(det) < 1e-12 * max(1.0, suu * svv):
        return None
    a = (svv * suy - suv * svy) / det
    b = (suu * svy - suv * suy) / det
    if b <= 0:
        return None
    return GaoFit(a, b, baseline, len(rows))
