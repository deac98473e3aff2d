"""Win rate and its prompt-clustered bootstrap interval, against hand-computed cases."""

from __future__ import annotations

import random

import numpy as np
import pytest

from judging.stats.winrate import (
    Vote,
    cluster_bootstrap,
    cluster_resample_totals,
    percentile,
    percentile_interval,
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


def test_percentile_interval_interpolates_like_percentile() -> None:
    samples = [3.0, 0.0, 2.0, 1.0, 4.0]
    low, high = percentile_interval(samples, level=0.5)
    assert (low, high) == pytest.approx(
        (percentile([0, 1, 2, 3, 4], 0.25), percentile([0, 1, 2, 3, 4], 0.75))
    )
    assert percentile_interval(np.array(samples), level=0.5) == (low, high)
    with pytest.raises(ValueError, match="empty"):
        percentile_interval([])


def test_cluster_resample_totals_draw_whole_clusters() -> None:
    # Rows: (score sum, verdicts) of clusters a = two wins, b = one loss.
    per_cluster = np.array([[2.0, 2.0], [0.0, 1.0]])
    totals = cluster_resample_totals(per_cluster, 500, np.random.default_rng(1))
    assert totals.shape == (500, 2)
    # Every resample draws two clusters: {a,a} = (4, 4), {a,b} = (2, 3), {b,b} = (0, 2).
    assert {tuple(row) for row in totals} == {(4.0, 4.0), (2.0, 3.0), (0.0, 2.0)}
    share = np.mean(totals[:, 1] == 3.0)
    assert 0.4 < share < 0.6  # {a,b} has probability 1/2
    again = cluster_resample_totals(per_cluster, 500, np.random.default_rng(1))
    assert np.array_equal(totals, again)
    assert cluster_resample_totals(np.zeros((0, 2)), 10, np.random.default_rng(0)).shape == (0, 2)


def test_interval_of_two_clusters_is_their_resample_range() -> None:
    # As above: resample win rates 1, 2/3, 0 with probabilities 1/4, 1/2, 1/4; a vote-level
    # bootstrap would also produce 1/3.
    votes = [Vote("a", 1.0), Vote("a", 1.0), Vote("b", 0.0)]
    interval = win_rate_interval(votes, n_boot=1000, seed=2)
    assert interval is not None
    assert interval.estimate == pytest.approx(2 / 3)
    assert (interval.low, interval.high) == (0.0, 1.0)
    assert interval.n_clusters == 2 and interval.n_votes == 3


def test_array_interval_agrees_with_the_generic_cluster_bootstrap() -> None:
    votes = _votes(100, 2, random.Random(4))
    fast = win_rate_interval(votes, n_boot=4000, seed=1)
    clusters = {p: [v for v in votes if v.prompt_id == p] for p in range(100)}
    slow = percentile_interval(cluster_bootstrap(clusters, win_rate, 4000, random.Random(1)))
    assert fast is not None
    assert (fast.low, fast.high) == pytest.approx(slow, abs=0.02)  # Monte Carlo error ~0.005
    assert all(type(x) is float for x in (fast.estimate, fast.low, fast.high))
