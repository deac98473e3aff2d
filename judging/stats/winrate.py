"""Win rate against the reference with a bootstrap interval clustered by prompt.

The unit of sampling in a study is the prompt, not the verdict: two raters judging the same pair
see the same two texts, so their verdicts are correlated and counting them as independent makes an
interval too narrow. Every interval here resamples whole prompts (clusters) with replacement and
recomputes the statistic on all the verdicts of the drawn prompts (Field & Welsh 2007; the cluster
bootstrap Chatbot Arena and AlpacaEval use for their leaderboards).

Pure functions over plain data: no database, no numpy; `random.Random(seed)` makes every interval
reproducible.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

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


def percentile_interval(samples: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    ordered = sorted(samples)
    tail = (1 - level) / 2
    return percentile(ordered, tail), percentile(ordered, 1 - tail)


def win_rate_interval(
    votes: Sequence[Vote], n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> Interval | None:
    """Win rate with a prompt-clustered percentile bootstrap interval; None without votes."""
    estimate = win_rate(votes)
    if estimate is None:
        return None
    clusters = group_by(votes, lambda v: v.prompt_id)
    samples = cluster_bootstrap(clusters, win_rate, n_boot, random.Random(seed))
    low, high = percentile_interval(samples, level)
    return Interval(estimate, low, high, n_clusters=len(clusters), n_votes=len(votes))
