"""Length-controlled win rate from human votes (AlpacaEval-style, Dubois et al. 2024).

Raters prefer the longer answer about two times in three (AlpacaEval's human table), so a policy
that only learned to write more wins more. The length-controlled (LC) win rate asks what the win
rate would be if the two responses were equally long: a logistic regression of the vote on the
length difference,

    P(checkpoint wins) = sigmoid(a + b * tanh(delta / s)),

with delta = checkpoint length - reference length (characters, as AlpacaEval) and s the standard
deviation of delta, predicted at delta = 0: LC = sigmoid(a). The tanh bounds the influence of one
very long answer. Ties and "both bad" are soft labels of one half (binary cross-entropy with
fractional targets), exactly as AlpacaEval fits its GLM on preference probabilities.

Unlike AlpacaEval there is no instruction-difficulty term (it needs many models judged on the same
instructions) and the length slope gets a small ridge penalty instead of cross-validated L1.
Symmetric data (a model against itself) has its maximum at a = 0, so LC = 0.5 exactly.

Pure functions over plain data, no numpy: a two-parameter Newton-Raphson with step halving.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import itemgetter, mul
from typing import TypeVar

from judging.stats.winrate import Interval, percentile_interval

K = TypeVar("K", bound=Hashable)

LENGTH_L2 = 1.0
"""Ridge penalty on the length slope: one pseudo-observation's worth, negligible beyond ~20 votes,
but it keeps the slope finite when the longer answer always wins (perfect separation)."""
BOOT_TOL = 1e-4
"""Newton stops inside the bootstrap once a step is below this: convergence is quadratic, so the
error left is about the square of the last step, far below a percentile's resolution."""
INTERCEPT_L2 = 1e-4
"""A vanishing penalty on the intercept, only so that a clean sweep (all votes won) stays finite."""


@dataclass(frozen=True)
class LengthVote:
    """One verdict, scored for the checkpoint, with the length difference of the two responses."""

    prompt_id: Hashable
    score: float
    """1 the checkpoint won, 0 the reference won, 0.5 tie or both bad."""
    length_diff: float
    """Checkpoint response length minus reference response length (characters)."""


@dataclass(frozen=True)
class LengthFit:
    """The fitted length model; `lc_win_rate` is its prediction at zero length difference."""

    intercept: float
    slope: float
    """Log-odds per unit of tanh(delta / scale): positive when the longer response wins more."""
    scale: float
    n_votes: int

    @property
    def lc_win_rate(self) -> float:
        return sigmoid(self.intercept)

    def predict(self, length_diff: float) -> float:
        """Predicted checkpoint win probability at a given length difference."""
        return sigmoid(self.intercept + self.slope * math.tanh(length_diff / self.scale))


# A row of sufficient statistics: (x = tanh(delta / s), total score, total weight).
Row = tuple[float, float, float]
Solution = tuple[dict[Hashable, float], float]
"""Fitted intercepts per group and the shared slope."""


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def length_scale(votes: Sequence[LengthVote]) -> float:
    """Standard deviation of the length differences (AlpacaEval's standardiser); 1 if degenerate."""
    diffs = [v.length_diff for v in votes]
    if len(diffs) < 2:
        return 1.0
    sd = statistics.stdev(diffs)
    return sd if sd > 0 else 1.0


def _rows_by_prompt(votes: Iterable[LengthVote], scale: float) -> dict[Hashable, list[Row]]:
    """Votes summed per (prompt, length difference): two raters of one pair share one row."""
    sums: dict[tuple[Hashable, float], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for v in votes:
        acc = sums[(v.prompt_id, v.length_diff)]
        acc[0] += v.score
        acc[1] += 1.0
    out: dict[Hashable, list[Row]] = defaultdict(list)
    for (prompt, diff), (score, weight) in sums.items():
        out[prompt].append((math.tanh(diff / scale), score, weight))
    return dict(out)


def _loglik(rows: Sequence[Row], a: float, b: float, l2_a: float, l2_b: float) -> float:
    total = -0.5 * (l2_a * a * a + l2_b * b * b)
    for x, s, w in rows:
        z = a + b * x
        # log sigmoid(z) = -log1p(exp(-z)), computed stably for both signs.
        log_p = -math.log1p(math.exp(-z)) if z >= 0 else z - math.log1p(math.exp(z))
        log_q = log_p - z
        total += s * log_p + (w - s) * log_q
    return total


def fit_rows(
    rows: Sequence[Row], *, start: tuple[float, float] = (0.0, 0.0), tol: float = 1e-9
) -> tuple[float, float]:
    """Penalised maximum likelihood (a, b) of one checkpoint's rows."""
    a, b = fit_shared_rows({0: rows}, ({0: start[0]}, start[1]), tol=tol)
    return a[0], b


def fit_length_model(
    votes: Sequence[LengthVote], *, scale: float | None = None
) -> LengthFit | None:
    """The logistic length model over these votes; None without votes."""
    if not votes:
        return None
    s = scale if scale is not None else length_scale(votes)
    rows = [row for group in _rows_by_prompt(votes, s).values() for row in group]
    a, b = fit_rows(rows)
    return LengthFit(a, b, s, len(votes))


def lc_win_rate(votes: Sequence[LengthVote], *, scale: float | None = None) -> float | None:
    """Win rate predicted at zero length difference; None without votes."""
    fit = fit_length_model(votes, scale=scale)
    return fit.lc_win_rate if fit else None


def resample_rows(
    clusters: Mapping[Hashable, Sequence[Row]], keys: Sequence[Hashable], rng: random.Random
) -> list[Row]:
    """One prompt-clustered bootstrap draw, as rows weighted by how often each prompt was drawn."""
    counts = Counter(rng.choices(keys, k=len(keys)))
    return [(x, s * m, w * m) for key, m in counts.items() for x, s, w in clusters[key]]


def lc_win_rate_interval(
    votes: Sequence[LengthVote], n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> Interval | None:
    """LC win rate with a percentile interval from resampling whole prompts; None without votes.

    The length scale is fixed at the full-sample value so that every resample predicts at the same
    zero; each refit starts from the full-sample estimate (a few Newton steps each).
    """
    fit = fit_length_model(votes)
    if fit is None:
        return None
    clusters = _rows_by_prompt(votes, fit.scale)
    keys = list(clusters)
    rng = random.Random(seed)
    samples = []
    for _ in range(n_boot):
        rows = resample_rows(clusters, keys, rng)
        a, _b = fit_rows(rows, start=(fit.intercept, fit.slope), tol=BOOT_TOL)
        samples.append(sigmoid(a))
    low, high = percentile_interval(samples, level)
    return Interval(fit.lc_win_rate, low, high, n_clusters=len(keys), n_votes=len(votes))


# ---- several checkpoints with one length slope ------------------------------------------------
#
# Raters' taste for length belongs to the raters, not to a checkpoint. Fitted per checkpoint, the
# slope is poorly identified exactly where it matters: a length hacker is longer than the base on
# nearly every prompt, so its votes say little about what happens at zero difference. Sharing one
# slope (and one scale) across the checkpoints of a study borrows that information from the
# checkpoints whose lengths vary around the base's, as AlpacaEval borrows it from its many models:
#     logit P(checkpoint k wins) = a_k + b * tanh(delta / s).


@dataclass(frozen=True)
class SharedLengthFit:
    intercepts: dict[Hashable, float]
    slope: float
    scale: float

    def lc_win_rate(self, key: Hashable) -> float:
        return sigmoid(self.intercepts[key])


@dataclass
class _Pass:
    """Log-likelihood, gradient and the arrow-shaped information matrix at one point."""

    loglik: float
    g_a: dict[Hashable, float]
    d_a: dict[Hashable, float]
    """Diagonal of the intercept block."""
    c_a: dict[Hashable, float]
    """Intercept-slope entries."""
    g_b: float
    e: float
    """Slope-slope entry."""


def _evaluate(
    groups: Mapping[Hashable, Sequence[Row]], a: Mapping[Hashable, float], b: float
) -> _Pass:
    """One pass over the rows: one exp and one log1p per row (the bootstrap's inner loop)."""
    out = _Pass(-0.5 * LENGTH_L2 * b * b, {}, {}, {}, -LENGTH_L2 * b, LENGTH_L2)
    for key, rows in groups.items():
        ak = a[key]
        ll, ga, da, ca = -0.5 * INTERCEPT_L2 * ak * ak, -INTERCEPT_L2 * ak, INTERCEPT_L2, 0.0
        for x, s, w in rows:
            z = ak + b * x
            if z >= 0:
                t = math.exp(-z)
                p, log_p = 1.0 / (1.0 + t), -math.log1p(t)
            else:
                t = math.exp(z)
                p, log_p = t / (1.0 + t), z - math.log1p(t)
            ll += s * log_p + (w - s) * (log_p - z)
            r, v = s - w * p, w * p * (1.0 - p)
            ga += r
            da += v
            ca += v * x
            out.g_b += r * x
            out.e += v * x * x
        out.loglik += ll
        out.g_a[key], out.d_a[key], out.c_a[key] = ga, da, ca
    return out


def fit_shared_rows(
    groups: Mapping[Hashable, Sequence[Row]],
    start: tuple[Mapping[Hashable, float], float] | None = None,
    *,
    tol: float = 1e-9,
    max_iter: int = 100,
) -> tuple[dict[Hashable, float], float]:
    """Penalised MLE of (a_k, b) by Newton-Raphson with step halving. The information matrix is
    arrow-shaped, so each step is solved in O(K) through the Schur complement of the intercepts."""
    a = {k: (start[0].get(k, 0.0) if start else 0.0) for k in groups}
    b = start[1] if start else 0.0
    point = _evaluate(groups, a, b)
    for _ in range(max_iter):
        schur = point.e - sum(point.c_a[k] ** 2 / point.d_a[k] for k in groups)
        if schur <= 0:
            break
        step_b = (point.g_b - sum(point.c_a[k] * point.g_a[k] / point.d_a[k] for k in groups)) / (
            schur
        )
        step_a = {k: (point.g_a[k] - point.c_a[k] * step_b) / point.d_a[k] for k in groups}
        t = 1.0
        while t > 1e-6:
            cand_a = {k: a[k] + t * step_a[k] for k in groups}
            cand = _evaluate(groups, cand_a, b + t * step_b)
            if cand.loglik >= point.loglik - 1e-12:
                break
            t /= 2
        else:
            break
        a, b, point = cand_a, b + t * step_b, cand
        if max([abs(t * step_b), *(abs(t * v) for v in step_a.values())]) < tol:
            break
    return a, b


def fit_shared_length_model(
    groups: Mapping[Hashable, Sequence[LengthVote]], *, scale: float | None = None
) -> SharedLengthFit | None:
    """One length slope for all groups (checkpoints), one intercept each; None without votes."""
    voted = {k: v for k, v in groups.items() if v}
    if not voted:
        return None
    s = scale if scale is not None else length_scale([v for vs in voted.values() for v in vs])
    rows = {k: [r for g in _rows_by_prompt(vs, s).values() for r in g] for k, vs in voted.items()}
    a, b = fit_shared_rows(rows)
    return SharedLengthFit(a, b, s)


# ---- the joint bootstrap's inner loop -----------------------------------------------------------
#
# Each resample refits the shared model on the drawn prompts' rows, weighted by how often each was
# drawn, by Newton from a nearby point: the full-sample fit, or the same resample's solution for
# an earlier verdict set. Near the maximum full steps converge quadratically, so the refit needs
# no line search and no log-likelihood: one tanh per row and pass (see `_newton`).

BOOT_STEP = 1e-3
"""A resample's refit stops once a Newton step is below this in every coordinate, after applying
it: convergence is quadratic, so the error left is of the order of the step squared (~1e-6 on the
log-odds scale), far below a percentile's resolution; the unit tests bound it against refits to
1e-12."""
MAX_NEWTON = 25


def _moments(rows: Sequence[Row], a: float, b: float) -> tuple[float, float, float, float, float]:
    """(d/da, -d2/da2, -d2/da db, d/db, -d2/db2) of one checkpoint's log-likelihood, unpenalised.
    With t = tanh(z / 2): p = (1 + t) / 2 and p (1 - p) = (1 - t^2) / 4 (no overflow at any z)."""
    half_a, half_b = 0.5 * a, 0.5 * b
    g_a = d_a = c_a = g_b = e = 0.0
    for x, s, w in rows:
        t = math.tanh(half_a + half_b * x)
        r = s - 0.5 * w * (1.0 + t)
        v = 0.25 * w * (1.0 - t * t)
        vx = v * x
        g_a += r
        d_a += v
        c_a += vx
        g_b += r * x
        e += vx * x
    return g_a, d_a, c_a, g_b, e


@dataclass(frozen=True)
class JointDraws:
    """Bootstrap draws for several checkpoints from the same resampled prompts."""

    fit: SharedLengthFit
    raw: dict[Hashable, list[float | None]]
    lc: dict[Hashable, list[float | None]]
    """None where a resample drew none of a checkpoint's prompts."""
    n_prompts: dict[Hashable, int]
    n_votes: dict[Hashable, int]
    solutions: list[Solution] = field(default_factory=list)
    """Each resample's fitted (intercepts, slope): a warm start for the next verdict set's
    bootstrap, whose resamples draw the same prompts and land very close."""


def _newton_step(
    drawn: Mapping[Hashable, Sequence[Row]], a: Mapping[Hashable, float], b: float
) -> tuple[dict[Hashable, float], float, float] | None:
    """The penalised Newton step at (a, b) and the Newton decrement; None when the information
    matrix is not positive definite. Solved through the Schur complement, as `fit_shared_rows`."""
    g_b, e = -LENGTH_L2 * b, LENGTH_L2
    blocks: dict[Hashable, tuple[float, float, float]] = {}
    for k, rows in drawn.items():
        ga, da, ca, gb, ek = _moments(rows, a[k], b)
        blocks[k] = (ga - INTERCEPT_L2 * a[k], da + INTERCEPT_L2, ca)
        g_b += gb
        e += ek
    schur = e - sum(ca * ca / da for _, da, ca in blocks.values())
    if not schur > 0:
        return None
    step_b = (g_b - sum(ca * ga / da for ga, da, ca in blocks.values())) / schur
    step_a = {k: (ga - ca * step_b) / da for k, (ga, da, ca) in blocks.items()}
    decrement = g_b * step_b + sum(blocks[k][0] * step_a[k] for k in blocks)
    return step_a, step_b, decrement


def _newton(
    drawn: Mapping[Hashable, Sequence[Row]], a: Mapping[Hashable, float], b: float
) -> Solution | None:
    """Full Newton steps from a nearby start while the Newton decrement keeps falling (it does in
    the quadratic region around the maximum, which a warm start is in); None when it stops
    falling or the steps do not settle, and the caller refits with the line-searched routine."""
    a = dict(a)
    last = math.inf
    for _ in range(MAX_NEWTON):
        found = _newton_step(drawn, a, b)
        if found is None or not found[2] < last:
            return None
        step_a, step_b, last = found
        a = {k: a[k] + step_a[k] for k in a}
        b += step_b
        if max(abs(step_b), *map(abs, step_a.values())) < BOOT_STEP:
            return a, b
    return None


@dataclass(frozen=True)
class _Influence:
    """The full-sample information's inverse times each prompt's gradient at the fit: to first
    order, how (a, b) move per extra draw of that prompt. A resample's Newton then starts at the
    fit plus sum_p (m_p - 1) times its prompt's vector (one Newton step with the full-sample
    information, the influence-function linearisation), one pass closer than the fit itself."""

    order: list[Hashable]
    """Groups in component order; the last component is the slope."""
    keys: list[Hashable]
    columns: list[list[float]]
    """Per component, its value for each prompt of `keys`."""
    total: list[float]

    @classmethod
    def of(
        cls,
        clusters: Mapping[Hashable, Mapping[Hashable, Sequence[Row]]],
        keys: list[Hashable],
        fit: SharedLengthFit,
    ) -> _Influence:
        order = list(clusters)
        full = {k: [r for g in c.values() for r in g] for k, c in clusters.items()}
        info = {k: _moments(rows, fit.intercepts[k], fit.slope) for k, rows in full.items()}
        d_a = {k: m[1] + INTERCEPT_L2 for k, m in info.items()}
        c_a = {k: m[2] for k, m in info.items()}
        schur = LENGTH_L2 + sum(m[4] - c_a[k] ** 2 / d_a[k] for k, m in info.items())
        rows = []
        for p in keys:
            g = {
                k: _moments(c[p], fit.intercepts[k], fit.slope)
                for k, c in clusters.items()
                if p in c
            }
            step_b = (
                sum(m[3] for m in g.values()) - sum(c_a[k] * m[0] / d_a[k] for k, m in g.items())
            ) / schur
            step_a = [((g[k][0] if k in g else 0.0) - c_a[k] * step_b) / d_a[k] for k in order]
            rows.append([*step_a, step_b])
        columns = [list(col) for col in zip(*rows, strict=True)]
        return cls(order, keys, columns, [sum(col) for col in columns])

    def start(self, fit: SharedLengthFit, counts: Mapping[Hashable, int]) -> Solution:
        drawn = list(map(counts.get, self.keys, repeat(0)))
        shift = [
            sum(map(mul, drawn, col)) - t for col, t in zip(self.columns, self.total, strict=True)
        ]
        a = {k: fit.intercepts[k] + u for k, u in zip(self.order, shift, strict=False)}
        return a, fit.slope + shift[-1]


CACHED_DRAWS = 8
"""Weighted copies of each prompt's rows are kept for up to this many draws of it (a prompt is
drawn more often in about one resample in a million; those are weighted on the fly)."""


class _Resampler:
    """One checkpoint's rows of the drawn prompts, weighted by their draw counts."""

    def __init__(self, clusters: Mapping[Hashable, Sequence[Row]]) -> None:
        self.clusters = clusters
        self.weighted = {
            (p, m): [(x, s * m, w * m) for x, s, w in rows]
            for p, rows in clusters.items()
            for m in range(1, CACHED_DRAWS + 1)
        }

    def rows(self, counts: Counter[Hashable], most: int) -> list[Row]:
        if most <= CACHED_DRAWS:
            return list(chain.from_iterable(map(self.weighted.get, counts.items(), repeat(()))))
        c = self.clusters
        return [(x, s * m, w * m) for p, m in counts.items() for x, s, w in c.get(p, ())]


def joint_bootstrap(
    groups: Mapping[Hashable, Sequence[LengthVote]],
    n_boot: int = 1000,
    seed: int = 0,
    warm: Sequence[Solution] | None = None,
) -> JointDraws | None:
    """Resample prompts (the same draw for every checkpoint: they share the held-out set) and
    refit the shared model each time; raw and LC win rates per checkpoint and resample.

    Each refit starts from `warm[i]` (resample i's solution for an earlier verdict set, see
    `JointDraws.solutions`) when given, else from the fit moved by the drawn prompts' influence;
    the start changes the result by no more than the stopping tolerance (`BOOT_STEP`)."""
    fit = fit_shared_length_model(groups)
    if fit is None:
        return None
    clusters = {k: _rows_by_prompt(vs, fit.scale) for k, vs in groups.items() if vs}
    keys = sorted({p for c in clusters.values() for p in c}, key=repr)
    resamplers = {k: _Resampler(c) for k, c in clusters.items()}
    influence = _Influence.of(clusters, keys, fit) if not warm else None
    rng = random.Random(seed)
    raw: dict[Hashable, list[float | None]] = {k: [] for k in clusters}
    lc: dict[Hashable, list[float | None]] = {k: [] for k in clusters}
    solutions: list[Solution] = []
    for i in range(n_boot):
        counts = Counter(rng.choices(keys, k=len(keys)))
        most = max(counts.values())
        drawn = {k: r.rows(counts, most) for k, r in resamplers.items()}
        present = {k: rows for k, rows in drawn.items() if rows}
        if warm and i < len(warm):
            start_a, start_b = warm[i]
        else:
            influence = influence or _Influence.of(clusters, keys, fit)
            start_a, start_b = influence.start(fit, counts)
        a0 = {k: start_a.get(k, fit.intercepts[k]) for k in present}
        solved = _newton(present, a0, start_b) or fit_shared_rows(
            present, (fit.intercepts, fit.slope), tol=BOOT_TOL
        )
        solutions.append(solved)
        for k, rows in drawn.items():
            score = sum(map(itemgetter(1), rows))
            raw[k].append(score / sum(map(itemgetter(2), rows)) if rows else None)
            lc[k].append(sigmoid(solved[0][k]) if rows else None)
    return JointDraws(
        fit,
        raw,
        lc,
        {k: len(c) for k, c in clusters.items()},
        {k: len(groups[k]) for k in clusters},
        solutions,
    )


def lc_win_rate_intervals(
    groups: Mapping[K, Sequence[LengthVote]],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[K, Interval]:
    """LC win rate per checkpoint of one study (shared length slope) with prompt-clustered
    intervals; checkpoints without votes are left out."""
    draws = joint_bootstrap(dict(groups.items()), n_boot, seed)
    return lc_intervals(draws, groups, level) if draws is not None else {}


def lc_intervals(draws: JointDraws, groups: Iterable[K], level: float = 0.95) -> dict[K, Interval]:
    """Percentile intervals of the LC draws of these groups (those with votes)."""
    out: dict[K, Interval] = {}
    for key in groups:
        if key not in draws.lc:
            continue
        values = [v for v in draws.lc[key] if v is not None]
        estimate = draws.fit.lc_win_rate(key)
        low, high = percentile_interval(values, level) if values else (estimate, estimate)
        out[key] = Interval(estimate, low, high, draws.n_prompts[key], draws.n_votes[key])
    return out
