"""Bradley-Terry strengths over checkpoints from pairwise votes, with prompt-clustered intervals.

P(i beats j) = sigmoid(theta_i - theta_j), ties counted as half a win each (FastChat's
`compute_bt`). A study compares every checkpoint with the same reference (the base), so the
checkpoints are compared with each other *through* the base; votes between any two items are
accepted as well, so studies with different references link up when they share a checkpoint.

The anchor (the base) is fixed at 0, which removes the model's one free constant; strengths are
log-odds against it. `virtual_ties` adds that many tied games between every other item and the
anchor (a weak prior towards "as good as the base"): it keeps a checkpoint that won every vote at a
finite strength. With the star design of one study the maximum-likelihood strength is then exactly
logit((wins + ties/2 + v/2) / (votes + v)), the hand-checkable case the tests use.

Fit by Newton-Raphson on the log-likelihood (concave), a small dense solve per step; the bootstrap
resamples whole prompts and refits from the full-sample estimate. Pure Python, no numpy.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from judging.stats.lc_winrate import sigmoid
from judging.stats.winrate import percentile_interval

DEFAULT_VIRTUAL_TIES = 1.0


@dataclass(frozen=True)
class PairVote:
    """One verdict between items `a` and `b` on one prompt, scored for `a`."""

    prompt_id: Hashable
    a: Hashable
    b: Hashable
    score: float
    """1 a won, 0 b won, 0.5 tie or both bad."""


@dataclass(frozen=True)
class Strength:
    """An item's strength (log-odds against the anchor) with a percentile bootstrap interval."""

    item: Hashable
    estimate: float
    low: float
    high: float

    @property
    def win_probability(self) -> float:
        """Predicted probability of beating the anchor."""
        return sigmoid(self.estimate)


# (i, j) with i < j as indices -> [score of i, games]
Counts = dict[tuple[int, int], list[float]]


def _index(votes: Iterable[PairVote], anchor: Hashable) -> list[Hashable]:
    items = [anchor]
    seen = {anchor}
    for v in votes:
        for item in (v.a, v.b):
            if item not in seen:
                seen.add(item)
                items.append(item)
    return items


def _counts(votes: Iterable[PairVote], where: Mapping[Hashable, int]) -> Counts:
    counts: Counts = defaultdict(lambda: [0.0, 0.0])
    for v in votes:
        i, j, s = where[v.a], where[v.b], v.score
        if i == j:
            continue  # an item against itself says nothing about strengths
        if i > j:
            i, j, s = j, i, 1.0 - s
        acc = counts[(i, j)]
        acc[0] += s
        acc[1] += 1.0
    return counts


def _with_prior(counts: Counts, n_items: int, virtual_ties: float) -> Counts:
    out: Counts = {k: list(v) for k, v in counts.items()}
    if virtual_ties > 0:
        for j in range(1, n_items):
            acc = out.setdefault((0, j), [0.0, 0.0])
            acc[0] += virtual_ties / 2
            acc[1] += virtual_ties
    return out


def _loglik(counts: Counts, theta: Sequence[float]) -> float:
    total = 0.0
    for (i, j), (s, n) in counts.items():
        z = theta[i] - theta[j]
        log_p = -math.log1p(math.exp(-z)) if z >= 0 else z - math.log1p(math.exp(z))
        total += s * log_p + (n - s) * (log_p - z)
    return total


def solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Solve a small dense linear system by Gaussian elimination with partial pivoting."""
    n = len(vector)
    m = [[*row, vector[k]] for k, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) < 1e-12:
            raise ValueError("singular system: some items are not connected to the anchor")
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(col + 1, n):
            factor = m[r][col] / m[col][col]
            if factor:
                for c in range(col, n + 1):
                    m[r][c] -= factor * m[col][c]
    out = [0.0] * n
    for r in range(n - 1, -1, -1):
        out[r] = (m[r][n] - sum(m[r][c] * out[c] for c in range(r + 1, n))) / m[r][r]
    return out


def _newton(
    counts: Counts, n_items: int, start: Sequence[float], tol: float = 1e-9, max_iter: int = 100
) -> list[float]:
    theta = list(start)
    current = _loglik(counts, theta)
    free = n_items - 1  # theta[0], the anchor, stays 0
    for _ in range(max_iter):
        grad = [0.0] * n_items
        info = [[0.0] * n_items for _ in range(n_items)]
        for (i, j), (s, n) in counts.items():
            p = sigmoid(theta[i] - theta[j])
            g = s - n * p
            grad[i] += g
            grad[j] -= g
            v = n * p * (1 - p)
            info[i][i] += v
            info[j][j] += v
            info[i][j] -= v
            info[j][i] -= v
        step = solve([row[1:] for row in info[1:]], grad[1:])
        t = 1.0
        while t > 1e-6:
            cand = [0.0] + [theta[k + 1] + t * step[k] for k in range(free)]
            value = _loglik(counts, cand)
            if value >= current - 1e-12:
                break
            t /= 2
        else:
            break
        theta, current = cand, value
        if max(abs(t * d) for d in step) < tol:
            break
    return theta


def fit_bradley_terry(
    votes: Sequence[PairVote], *, anchor: Hashable, virtual_ties: float = DEFAULT_VIRTUAL_TIES
) -> dict[Hashable, float]:
    """Maximum-likelihood strengths (anchor = 0) of every item in the votes.

    Raises ValueError when an item is not connected to the anchor by votes (and no prior links it).
    """
    items = _index(votes, anchor)
    where = {item: k for k, item in enumerate(items)}
    counts = _with_prior(_counts(votes, where), len(items), virtual_ties)
    if len(items) == 1:
        return {anchor: 0.0}
    theta = _newton(counts, len(items), [0.0] * len(items))
    return dict(zip(items, theta, strict=True))


def bradley_terry_intervals(
    votes: Sequence[PairVote],
    *,
    anchor: Hashable,
    virtual_ties: float = DEFAULT_VIRTUAL_TIES,
    n_boot: int = 500,
    seed: int = 0,
    level: float = 0.95,
) -> dict[Hashable, Strength]:
    """Strengths with percentile intervals from resampling whole prompts (every item refitted)."""
    items = _index(votes, anchor)
    where = {item: k for k, item in enumerate(items)}
    point = fit_bradley_terry(votes, anchor=anchor, virtual_ties=virtual_ties)
    start = [point[item] for item in items]
    by_prompt: dict[Hashable, list[PairVote]] = defaultdict(list)
    for v in votes:
        by_prompt[v.prompt_id].append(v)
    per_prompt = {p: _counts(vs, where) for p, vs in by_prompt.items()}
    keys = list(per_prompt)
    rng = random.Random(seed)
    samples: list[list[float]] = [[] for _ in items]
    for _ in range(n_boot if keys else 0):
        drawn: Counts = defaultdict(lambda: [0.0, 0.0])
        for key, m in Counter(rng.choices(keys, k=len(keys))).items():
            for pair, (s, n) in per_prompt[key].items():
                drawn[pair][0] += s * m
                drawn[pair][1] += n * m
        try:
            theta = _newton(_with_prior(drawn, len(items), virtual_ties), len(items), start)
        except ValueError:
            continue  # a resample that lost every vote of some item: that item has no strength
        for k, value in enumerate(theta):
            samples[k].append(value)
    out = {}
    for k, item in enumerate(items):
        low, high = percentile_interval(samples[k], level) if samples[k] else (point[item],) * 2
        out[item] = Strength(item, point[item], low, high)
    return out
