"""Win rate against the reference with a bootstrap interval clustered by prompt.

The unit of sampling in a study is the prompt, not the verdict: two raters judging the same pair
see the same two texts, so their verdicts are correlated and counting them as independent makes an
interval too narrow. Every interval here resamples whole prompts (clusters) with replacement and
recomputes the statistic on all the verdicts of the drawn prompts (Field & Welsh 2007; the cluster
bootstrap Chatbot Arena and AlpacaEval use for their leaderboards).

Pure functions over plain data, no database. The win rate's interval is array code: a resample is
a vector of multinomial prompt counts, its win rate (counts @ per-prompt score sums) /
(counts @ per-prompt verdict counts), every resample in one matrix product
(`cluster_resample_totals`); `np.random.default_rng(seed)` makes it reproducible.
`cluster_bootstrap` takes any statistic of the drawn items, so it resamples in a loop.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

T = TypeVar("T")
H = TypeVar("H", bound=Hashable)

# Score of a verdict from the checkpoint's point of view. "both bad" says neither is better: a tie.
WINNER_SCORE = {"checkpoint": 1.0, "reference": 0.0, "tie": 0.5, "both_bad": 0.5}


@dataclass(frozen=True)
class Vote:
    """One verdict on one (prompt, checkpoint) comparison, scored for the checkpoint."""

    prompt_id: Hashable
    score: float
    """1 the checkpoint won, 0 the reference won, 0.5 tie or both bad."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    n_clusters: int
    """Distinct prompts behind the estimate (the effective sample size's upper bound)."""
    n_votes: int


def vote_score(winner: str) -> float:
    """The checkpoint's score for a resolved winner (see `stats.agreement.winner`)."""
    try:
        return WINNER_SCORE[winner]
    except KeyError:
        expected = sorted(WINNER_SCORE)
        raise ValueError(f"unknown winner {winner!r}; expected one of {expected}") from None


def win_rate(votes: Iterable[Vote]) -> float | None:
    """Mean score over verdicts: (wins + ties / 2) / verdicts; None without verdicts."""
    scores = [v.score for v in votes]
    return sum(scores) / len(scores) if scores else None


def group_by(items: Iterable[T], key: Callable[[T], H]) -> dict[H, list[T]]:
    groups: dict[H, list[T]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return dict(groups)


def cluster_bootstrap(
    clusters: Mapping[H, Sequence[T]],
    statistic: Callable[[list[T]], float | None],
    n_boot: int,
    rng: random.Random,
) -> list[float]:
    """Statistic over `n_boot` resamples of whole clusters (with replacement).

    Resamples where the statistic is undefined (None) are dropped, so callers see how many
    survived by the length of the result.
    """
    keys = list(clusters)
    out: list[float] = []
    if not keys:
        return out
    for _ in range(n_boot):
        drawn: list[T] = []
        for key in rng.choices(keys, k=len(keys)):
            drawn.extend(clusters[key])
        value = statistic(drawn)
        if value is not None and not math.isnan(value):
            out.append(value)
    return out


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of an already sorted sequence, q in [0, 1]."""
    if not sorted_values:
        raise ValueError("percentile of an empty sequence")
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def percentile_interval(
    samples: Sequence[float] | npt.NDArray[np.float64], level: float = 0.95
) -> tuple[float, float]:
    """Central `level` interval of the samples, linear interpolation as `percentile`."""
    values = np.asarray(samples, dtype=np.float64)
    if not values.size:
        raise ValueError("percentile of an empty sequence")
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


_BLOCK = 2_000_000  # resamples x clusters per block of drawn counts (bounds the memory)


def cluster_resample_totals(
    per_cluster: npt.NDArray[np.float64], n_boot: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Column totals (n_boot x columns) of `n_boot` resamples of whole clusters with replacement.

    `per_cluster` holds one row of additive statistics per cluster (a verdict count, a score sum).
    A resample is a vector of multinomial counts over the clusters (uniform, summing to the
    number of clusters), and its totals are counts @ per_cluster: any statistic that is a
    function of such sums is then array code over the rows of the result.
    """
    table = np.asarray(per_cluster, dtype=np.float64)
    n_clusters = len(table)
    if not n_clusters or n_boot <= 0:
        return np.zeros((0, *table.shape[1:]))
    block = max(1, _BLOCK // n_clusters)
    out = []
    for start in range(0, n_boot, block):
        rows = min(block, n_boot - start)
        # Counts of uniform draws are multinomial; drawing indices and counting them with one
        # bincount is several times cheaper than Generator.multinomial's per-cluster binomials.
        drawn = rng.integers(0, n_clusters, size=(rows, n_clusters))
        drawn += np.arange(rows)[:, None] * n_clusters
        counts = np.bincount(drawn.ravel(), minlength=rows * n_clusters)
        out.append(counts.reshape(rows, n_clusters).astype(np.float64) @ table)
    return np.concatenate(out)


def win_rate_interval(
    votes: Sequence[Vote], n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> Interval | None:
    """Win rate with a prompt-clustered percentile bootstrap interval; None without votes."""
    estimate = win_rate(votes)
    if estimate is None:
        return None
    # Clusters in a fixed order (by repr), so that the same votes in any order draw the same
    # resamples and give the same interval.
    keys = sorted({v.prompt_id for v in votes}, key=repr)
    clusters: dict[Hashable, int] = {k: i for i, k in enumerate(keys)}
    where = np.array([clusters[v.prompt_id] for v in votes])
    scores = np.array([v.score for v in votes], dtype=np.float64)
    per_prompt = np.stack(
        [
            np.bincount(where, weights=scores, minlength=len(clusters)),
            np.bincount(where, minlength=len(clusters)).astype(np.float64),
        ],
        axis=1,
    )
    totals = cluster_resample_totals(per_prompt, n_boot, np.random.default_rng(seed))
    samples = totals[:, 0] / totals[:, 1]  # every prompt has a verdict: no resample is empty
    low, high = percentile_interval(samples, level)
    return Interval(estimate, low, high, n_clusters=len(clusters), n_votes=len(votes))
