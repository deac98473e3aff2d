"""Win rate and its prompt-clustered bootstrap interval, against hand-computed cases."""

from __future__ import annotations

import random

import pytest

from judging.stats.winrate import (
    Vote,
    cluster_bootstrap,
    percentile,
    vote_score,
    win_rate,
    win_rate_interval,
)


def test_win_rate_counts_ties_and_both_bad_as_half() -> None:
    scores = [vote_score(w) for w in ("checkpoint", "reference", "tie", "both_bad", "checkpoint")]
    votes = [Vote(i, s) for i, s in enumerate(scores)]
    assert win_rate(votes) == pytest.approx((2 + 0.5 + 0.5) / 5)


def test_no_votes_no_rate() -> None:
    assert win_rate([]) is None
    assert win_rate_interval([]) is None


def test_unknown_winner_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown winner"):
        vote_score("left")


def test_percentile_interpolates() -> None:
    assert percentile([0.0, 1.0, 2.0, 3.0], 0.5) == pytest.approx(1.5)
    assert percentile([0.0, 10.0], 0.25) == pytest.approx(2.5)


def test_cluster_bootstrap_resamples_whole_clusters() -> None:
    # Cluster "a" holds two votes of 1, cluster "b" one vote of 0: every resample is one of
    # {a,a} -> 1, {a,b} -> 2/3, {b,b} -> 0; nothing else can appear if clusters stay whole.
    clusters = {"a": [Vote("a", 1.0), Vote("a", 1.0)], "b": [Vote("b", 0.0)]}
    samples = cluster_bootstrap(clusters, win_rate, 300, random.Random(1))
    assert {round(s, 6) for s in samples} <= {1.0, round(2 / 3, 6), 0.0}
    assert len(samples) == 300


def _votes(n_prompts: int, raters: int, rng: random.Random) -> list[Vote]:
    votes = []
    for p in range(n_prompts):
        s = rng.choice([0.0, 1.0, 1.0, 0.5])
        votes += [Vote(p, s) for _ in range(raters)]  # raters agree on every prompt
    return votes


def test_interval_contains_estimate_and_shrinks_with_more_prompts() -> None:
    small = win_rate_interval(_votes(40, 2, random.Random(0)), seed=3)
    large = win_rate_interval(_votes(640, 2, random.Random(0)), seed=3)
    assert small is not None and large is not None
    assert small.low <= small.estimate <= small.high
    assert (large.high - large.low) < 0.5 * (small.high - small.low)
    assert small.n_clusters == 40 and small.n_votes == 80


def test_clustered_interval_is_wider_than_treating_agreeing_votes_as_independent() -> None:
    votes = _votes(100, 2, random.Random(7))
    clustered = win_rate_interval(votes, seed=5)
    # The naive interval: every verdict its own cluster.
    naive = win_rate_interval([Vote(i, v.score) for i, v in enumerate(votes)], seed=5)
    assert clustered is not None and naive is not None
    assert clustered.estimate == pytest.approx(naive.estimate)
    # Two perfectly agreeing raters double the votes but not the information: about sqrt(2) wider.
    ratio = (clustered.high - clustered.low) / (naive.high - naive.low)
    assert 1.2 < ratio < 1.7


def test_interval_is_reproducible_by_seed() -> None:
    votes = _votes(50, 2, random.Random(2))
    assert win_rate_interval(votes, seed=11) == win_rate_interval(votes, seed=11)
