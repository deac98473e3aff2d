"""Bradley-Terry strengths over checkpoints from pairwise votes, with prompt-clustered intervals.

P(i beats j) = sigmoid(theta_i - theta_j), ties counted as half a win each (FastChat's
`compute_bt`). A study compares every checkpoint with the same reference (the base), so the
checkpoints are compared with each other *through* the base; votes between any two items are
accepted as well, so studies with different references link up when they share a checkpoint.

The anchor (the base) is fixed at 0, which removes the model's one free constant; strengths are
log-odds against it. `virtual_ties` adds that many tied games between every other item and the
anchor (a weak prior towards "as good as the base"): it keeps a checkpoint that won every vote at a
finite strength. With the star design of one study the maximum-likelihood strength is then exactly
logit((wins + ties/2 + v/2) / (votes + v)), the hand-checkable case the tests use: one checkpoint
with 3 wins and 1 loss against the base has strength log 3 without the prior and
logit(3.5 / 5) = log(7 / 3) with one virtual tie.

The votes only enter through sufficient statistics: per unordered pair of items, the score of the
lower-indexed item and the number of games. The log-likelihood is concave in the free strengths;
Newton's method with a backtracking line search (never accepting a step that lowers it) finds the
maximum. A finite maximum exists exactly when the graph "i took points from j" is strongly
connected (Zermelo 1929; Ford 1957): however the items are split in two, each side took points
from the other. Virtual ties with the anchor guarantee this; without them a disconnected item or a
clean sweep has no finite strength, which `fit_bradley_terry` reports as an error and the
bootstrap drops (the whole resample).

The bootstrap resamples whole prompts (the verdicts on one prompt are correlated): per
resample, multinomial prompt counts (B x P) times the per-prompt score and game tables (P x pairs)
give every resample's pair totals at once, and one batched Newton over all resamples (B x items,
B solves of items x items per step) refits them from the full-sample estimate.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from judging.stats.winrate import cluster_resample_totals, percentile_interval

DEFAULT_VIRTUAL_TIES = 1.0

Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

_TOL = 1e-9  # Newton stops when no strength moves by more than this (log-odds)
_MAX_ITER = 100
_MIN_STEP = 1e-6  # line search gives up below this fraction of the Newton step


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
        return float(_sigmoid(np.asarray(self.estimate)))


def _sigmoid(z: Array) -> Array:
    """Logistic function without overflow for any finite z."""
    return np.exp(-np.logaddexp(0.0, -z))


def solve(matrix: npt.ArrayLike, vector: npt.ArrayLike) -> Array:
    """Solve a dense linear system, or a stack of them (matrix ... x n x n, vector ... x n).

    The systems here are the information matrices of Newton steps with the anchor removed: they
    are singular exactly when some item is not connected to the anchor by games.
    """
    a = np.asarray(matrix, dtype=np.float64)
    b = np.asarray(vector, dtype=np.float64)
    try:
        out = np.asarray(np.linalg.solve(a, b[..., None])[..., 0], dtype=np.float64)
    except np.linalg.LinAlgError:
        out = np.full(b.shape, np.nan)
    if not np.all(np.isfinite(out)):
        raise ValueError("singular system: some items are not connected to the anchor")
    return out


@dataclass(frozen=True)
class _Design:
    """Items (anchor first), the unordered pairs that met, and per-prompt pair tables."""

    items: list[Hashable]
    first: npt.NDArray[np.intp]  # pair k is (first[k], second[k]) with first < second
    second: npt.NDArray[np.intp]
    scores: Array  # prompts x pairs: score of `first` against `second`
    games: Array  # prompts x pairs
    prior_scores: Array  # pairs: virtual ties' score of `first`
    prior_games: Array  # pairs

    @property
    def incidence(self) -> Array:
        """pairs x items: +1 at `first`, -1 at `second` (z = incidence @ theta)."""
        d = np.zeros((len(self.first), len(self.items)))
        rows = np.arange(len(self.first))
        d[rows, self.first] = 1.0
        d[rows, self.second] = -1.0
        return d


def _design(votes: Sequence[PairVote], anchor: Hashable, virtual_ties: float) -> _Design:
    where: dict[Hashable, int] = {anchor: 0}
    for v in votes:
        where.setdefault(v.a, len(where))
        where.setdefault(v.b, len(where))
    n_items = len(where)
    prompts: dict[Hashable, int] = {}
    pair_of: dict[tuple[int, int], int] = {}
    if virtual_ties > 0:
        for j in range(1, n_items):
            pair_of[(0, j)] = j - 1
    rows: list[int] = []
    cols: list[int] = []
    points: list[float] = []
    for v in votes:
        i, j, s = where[v.a], where[v.b], v.score
        if i == j:
            continue  # an item against itself says nothing about strengths
        if i > j:
            i, j, s = j, i, 1.0 - s
        rows.append(prompts.setdefault(v.prompt_id, len(prompts)))
        cols.append(pair_of.setdefault((i, j), len(pair_of)))
        points.append(s)
    shape = (len(prompts), len(pair_of))
    scores = np.zeros(shape)
    games = np.zeros(shape)
    np.add.at(scores, (rows, cols), points)
    np.add.at(games, (rows, cols), 1.0)
    pairs = np.array(list(pair_of), dtype=np.intp).reshape(-1, 2)
    prior_scores = np.zeros(len(pair_of))
    prior_games = np.zeros(len(pair_of))
    if virtual_ties > 0:
        prior_scores[: n_items - 1] = virtual_ties / 2
        prior_games[: n_items - 1] = virtual_ties
    return _Design(
        items=list(where),
        first=pairs[:, 0],
        second=pairs[:, 1],
        scores=scores,
        games=games,
        prior_scores=prior_scores,
        prior_games=prior_games,
    )


def _finite_mle(design: _Design, scores: Array, games: Array) -> tuple[Mask, Mask]:
    """Two masks over the rows of pair totals (B x pairs): every item is connected to the anchor
    by games; the maximum-likelihood strengths are finite (the graph "i took points from j" is
    strongly connected, so no group of items won or lost every game against the rest)."""
    if design.prior_games.any():  # virtual ties link every item both ways with the anchor
        every = np.ones(len(scores), dtype=bool)
        return every, every
    n_items = len(design.items)
    eye = np.eye(n_items, dtype=bool)
    took = np.zeros((len(scores), n_items, n_items))  # took[b, i, j]: i took points from j
    took[:, design.first, design.second] = scores > 0
    took[:, design.second, design.first] = (games - scores) > 0
    met = (took + took.transpose(0, 2, 1)) > 0

    def closure(adjacent: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        reach = adjacent | eye
        for _ in range(max(1, int(np.ceil(np.log2(n_items))))):
            reach = (reach.astype(np.float64) @ reach.astype(np.float64)) > 0
        return reach

    linked = closure(met)[:, 0, :].all(axis=1)
    reach = closure(took > 0)
    finite = reach[:, 0, :].all(axis=1) & reach[:, :, 0].all(axis=1)
    return np.asarray(linked, dtype=bool), np.asarray(finite, dtype=bool)


def _loglik(incidence: Array, scores: Array, games: Array, theta: Array) -> Array:
    z = theta @ incidence.T
    log_p = -np.logaddexp(0.0, -z)
    log_q = -np.logaddexp(0.0, z)
    out: Array = (scores * log_p + (games - scores) * log_q).sum(axis=1)
    return out


def _newton(design: _Design, scores: Array, games: Array, start: Array) -> Array:
    """Maximise every row's log-likelihood (rows: pair totals B x pairs, start B x items).

    Rows converge independently: a row stops when its step is below the tolerance or its line
    search cannot improve the likelihood. Rows must have finite maxima (see `_finite_mle`).
    """
    incidence = design.incidence
    theta = np.array(start, dtype=np.float64)
    theta[:, 0] = 0.0  # the anchor
    current = _loglik(incidence, scores, games, theta)
    active = np.arange(len(theta))
    for _ in range(_MAX_ITER):
        if not len(active):
            break
        th, s, n = theta[active], scores[active], games[active]
        z = th @ incidence.T
        p = _sigmoid(z)
        grad = (s - n * p) @ incidence
        weight = n * np.exp(-np.logaddexp(0.0, z) - np.logaddexp(0.0, -z))  # n p (1 - p)
        info = np.einsum("bk,ki,kj->bij", weight, incidence, incidence)
        step = np.zeros_like(th)
        step[:, 1:] = solve(info[:, 1:, 1:], grad[:, 1:])
        t = np.ones(len(active))
        accepted = np.zeros(len(active), dtype=bool)
        value = current[active].copy()
        while True:
            todo = ~accepted & (t > _MIN_STEP)
            if not todo.any():
                break
            cand = th[todo] + t[todo, None] * step[todo]
            cand_value = _loglik(incidence, s[todo], n[todo], cand)
            ok = cand_value >= current[active][todo] - 1e-12
            idx = np.flatnonzero(todo)
            accepted[idx[ok]] = True
            value[idx[ok]] = cand_value[ok]
            t[idx[~ok]] /= 2
        moved = active[accepted]
        theta[moved] += t[accepted, None] * step[accepted]
        current[moved] = value[accepted]
        converged = np.abs(t[accepted, None] * step[accepted]).max(axis=1) < _TOL
        active = moved[~converged]
    return theta


def fit_bradley_terry(
    votes: Sequence[PairVote], *, anchor: Hashable, virtual_ties: float = DEFAULT_VIRTUAL_TIES
) -> dict[Hashable, float]:
    """Maximum-likelihood strengths (anchor = 0) of every item in the votes.

    Raises ValueError when an item is not connected to the anchor by votes (and no prior links it),
    or when the maximum is at infinity (an item won, or lost, every vote against the rest).
    """
    design = _design(votes, anchor, virtual_ties)
    return dict(zip(design.items, _point(design).tolist(), strict=True))


def _point(design: _Design) -> Array:
    if len(design.items) == 1:
        return np.zeros(1)
    scores = (design.scores.sum(axis=0) + design.prior_scores)[None, :]
    games = (design.games.sum(axis=0) + design.prior_games)[None, :]
    linked, finite = _finite_mle(design, scores, games)
    if not linked[0]:
        raise ValueError("some items are not connected to the anchor by votes")
    if not finite[0]:
        raise ValueError(
            "no finite strengths: some items won (or lost) every vote against the rest; "
            "use virtual_ties > 0"
        )
    theta: Array = _newton(design, scores, games, np.zeros((1, len(design.items))))[0]
    return theta


def _bootstrap(design: _Design, point: Array, n_boot: int, rng: np.random.Generator) -> Array:
    """Refitted strengths of the resamples that have finite ones (kept x items)."""
    if not len(design.scores) or n_boot <= 0 or len(design.items) == 1:
        return np.zeros((0, len(design.items)))
    tables = np.concatenate([design.scores, design.games], axis=1)
    totals = cluster_resample_totals(tables, n_boot, rng)
    n_pairs = len(design.first)
    scores = totals[:, :n_pairs] + design.prior_scores
    games = totals[:, n_pairs:] + design.prior_games
    # A resample that lost every vote of some item (or left one unbeaten) has no strengths.
    _, finite = _finite_mle(design, scores, games)
    scores, games = scores[finite], games[finite]
    start = np.broadcast_to(point, (len(scores), len(point)))
    return _newton(design, scores, games, start)


def bradley_terry_intervals(
    votes: Sequence[PairVote],
    *,
    anchor: Hashable,
    virtual_ties: float = DEFAULT_VIRTUAL_TIES,
    n_boot: int = 500,
    seed: int = 0,
    level: float = 0.95,
) -> dict[Hashable, Strength]:
    """Strengths with percentile intervals from resampling whole prompts (every item refitted).

    Resamples without finite strengths are dropped whole; if none is left every interval is the
    point estimate. The anchor's interval is [0, 0]. Reproducible by `seed`.
    """
    design = _design(votes, anchor, virtual_ties)
    point = _point(design)
    samples = _bootstrap(design, point, n_boot, np.random.default_rng(seed))
    out = {}
    for k, item in enumerate(design.items):
        estimate = float(point[k])
        low, high = percentile_interval(samples[:, k], level) if len(samples) else (estimate,) * 2
        out[item] = Strength(item, estimate, float(low), float(high))
    return out
