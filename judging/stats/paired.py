"""A paired test between two checkpoints judged against the same reference on shared prompts.

Both checkpoints are compared with the base on the same held-out prompts, so the question "is A
better than B?" is paired by prompt: per prompt, d = mean score of A - mean score of B (averaged
over its raters), and the statistic is the mean of d over the prompts both were judged on. Under
the null hypothesis that A and B are exchangeable on every prompt, each d is as likely to have
either sign: the sign-flip permutation test (exact when there are few prompts, Monte Carlo
otherwise) gives the two-sided p-value, and a paired bootstrap over prompts gives the interval.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from itertools import compress

from judging.stats.winrate import Vote, percentile_interval

EXACT_MAX_PROMPTS = 14
"""Up to 2**14 sign patterns are enumerated exactly; beyond, `n_perm` random ones are drawn."""


@dataclass(frozen=True)
class PairedTest:
    """A minus B on the prompts both were judged on."""

    a_rate: float
    b_rate: float
    difference: float
    low: float
    high: float
    p_value: float
    """Two-sided sign-flip permutation p-value of the mean per-prompt difference."""
    n_prompts: int
    exact: bool


def _prompt_means(votes: Sequence[Vote]) -> dict[Hashable, float]:
    sums: dict[Hashable, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for v in votes:
        sums[v.prompt_id][0] += v.score
        sums[v.prompt_id][1] += 1
    return {p: s / n for p, (s, n) in sums.items()}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


_KEEP = bytes(int(i < 128) for i in range(256))


def _keeps(rng: random.Random, n: int) -> bytes:
    """n draws of `rng.random() < 0.5` (1 keeps the sign), as one bytes object and with the
    generator left exactly where n calls of `rng.random()` leave it: random() takes two 32-bit
    words and is below one half exactly when the first word's top bit is clear, and
    getrandbits(64 n) is those 2 n words, least significant first (CPython's Mersenne Twister)."""
    words = rng.getrandbits(64 * n).to_bytes(8 * n, "little")
    return words[3::8].translate(_KEEP)


def sign_flip_p_value(
    diffs: Sequence[float], n_perm: int = 10000, rng: random.Random | None = None
) -> tuple[float, bool]:
    """Two-sided p-value of mean(diffs) under random sign flips; (p, whether it was exact)."""
    observed = abs(sum(diffs))
    eps = 1e-12 * max(1.0, observed)
    if len(diffs) <= EXACT_MAX_PROMPTS:
        patterns = itertools.product((1.0, -1.0), repeat=len(diffs))
        hits = total = 0
        for signs in patterns:
            total += 1
            hits += abs(sum(s * d for s, d in zip(signs, diffs, strict=True))) >= observed - eps
        return hits / total, True
    rng = rng or random.Random(0)
    hits = 0
    all_kept = sum(diffs)
    for _ in range(n_perm):
        flipped = 2 * sum(compress(diffs, _keeps(rng, len(diffs))), 0.0) - all_kept
        hits += abs(flipped) >= observed - eps
    # The observed labelling counts as one permutation (Phipson & Smyth 2010): p is never 0.
    return (hits + 1) / (n_perm + 1), False


def paired_test(
    votes_a: Sequence[Vote],
    votes_b: Sequence[Vote],
    *,
    n_perm: int = 10000,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedTest | None:
    """Compare A and B on their shared prompts; None when they share none."""
    means_a, means_b = _prompt_means(votes_a), _prompt_means(votes_b)
    shared = [p for p in means_a if p in means_b]
    if not shared:
        return None
    diffs = [means_a[p] - means_b[p] for p in shared]
    rng = random.Random(seed)
    p_value, exact = sign_flip_p_value(diffs, n_perm, rng)
    boots = [_mean(rng.choices(diffs, k=len(diffs))) for _ in range(n_boot)]
    low, high = percentile_interval(boots, level)
    return PairedTest(
        a_rate=_mean([means_a[p] for p in shared]),
        b_rate=_mean([means_b[p] for p in shared]),
        difference=_mean(diffs),
        low=low,
        high=high,
        p_value=p_value,
        n_prompts=len(shared),
        exact=exact,
    )
