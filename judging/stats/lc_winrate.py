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
from dataclasses import dataclass

from judging.stats.winrate import Interval, percentile_interval

LENGTH_L2 = 1.0
"""Ridge penalty on the length slope: one pseudo-observation's worth, negligible beyond ~20 votes,
but it keeps the slope finite when the longer answer always wins (perfect separation)."""
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
    rows: Sequence[Row],
    *,
    start: tuple[float, float] = (0.0, 0.0),
    l2_a: float = INTERCEPT_L2,
    l2_b: float = LENGTH_L2,
    tol: float = 1e-9,
    max_iter: int = 100,
) -> tuple[float, float]:
    """Penalised maximum likelihood (a, b) by Newton-Raphson with step halving."""
    a, b = start
    current = _loglik(rows, a, b, l2_a, l2_b)
    for _ in range(max_iter):
        g_a, g_b = -l2_a * a, -l2_b * b
        h_aa, h_ab, h_bb = l2_a, 0.0, l2_b  # observed information (negative Hessian)
        for x, s, w in rows:
            p = sigmoid(a + b * x)
            g_a += s - w * p
            g_b += (s - w * p) * x
            v = w * p * (1 - p)
            h_aa += v
            h_ab += v * x
            h_bb += v * x * x
        det = h_aa * h_bb - h_ab * h_ab
        if det <= 0:
            break
        step_a = (h_bb * g_a - h_ab * g_b) / det
        step_b = (h_aa * g_b - h_ab * g_a) / det
        t = 1.0
        while t > 1e-6:
            cand_a, cand_b = a + t * step_a, b + t * step_b
            value = _loglik(rows, cand_a, cand_b, l2_a, l2_b)
            if value >= current - 1e-12:
                break
            t /= 2
        else:
            break
        a, b, current = cand_a, cand_b, value
        if abs(t * step_a) < tol and abs(t * step_b) < tol:
            break
    return a, b


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
        a, _b = fit_rows(resample_rows(clusters, keys, rng), start=(fit.intercept, fit.slope))
        samples.append(sigmoid(a))
    low, high = percentile_interval(samples, level)
    return Interval(fit.lc_win_rate, low, high, n_clusters=len(keys), n_votes=len(votes))


def prompt_rows(votes: Sequence[LengthVote], scale: float) -> dict[Hashable, list[Row]]:
    """Sufficient statistics per prompt, for callers that resample several checkpoints jointly."""
    return _rows_by_prompt(votes, scale)
