"""The proxy-bias sweep's pieces on hand-computed cases (no model, no gold scorer)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.proxy_bias_sweep import (
    RUNGS,
    bon_win_rates,
    clustered_accuracy,
    fit_logistic,
    ladder_pairs,
    pair_correct,
    relabel,
)


def test_bon_by_the_gold_itself_climbs_the_prompt_one_sample_at_a_time() -> None:
    """One prompt whose samples have gold 0..15 in order: BoN(n) by the gold picks sample n-1,
    which beats n-1 of the 16 samples and ties itself: (n - 1 + 1/2) / 16."""
    gold = np.arange(16, dtype=float)[None, :]
    assert bon_win_rates(gold, gold) == pytest.approx([(n - 0.5) / 16 for n in RUNGS])
    # Scored against the gold, BoN keeps sample 0, the worst: 0.5 / 16 at every rung.
    assert bon_win_rates(-gold, gold) == pytest.approx([0.5 / 16] * len(RUNGS))


def test_the_learner_recovers_the_labels_direction() -> None:
    rng = np.random.default_rng(0)
    diff = rng.normal(size=(400, 2))
    y = (diff[:, 0] - 0.5 * diff[:, 1] > 0).astype(float)
    w = fit_logistic(diff, y)
    assert w[0] > 0 > w[1]
    assert np.mean((diff @ w > 0) == y) > 0.95


def test_a_length_bias_pulls_the_labels_to_the_longer_answer() -> None:
    """Equal gold: without a bias the labels are coin flips; with a strong one, before the
    flips, the longer answer always wins (flips leave 3/4 of the labels standing)."""
    gold = np.zeros((2000, 2))
    words = np.tile([200, 10], (2000, 1))
    assert relabel(gold, words, 0.0).mean() == pytest.approx(0.5, abs=0.05)
    assert relabel(gold, words, 1.0).mean() == pytest.approx(0.75, abs=0.03)


def test_ladder_pairs_are_consecutive_samples_of_one_prompt() -> None:
    """Two prompts of four samples: pairs (0, 1) and (2, 3) of each; words come from the first
    feature (words / 100)."""
    gold = np.arange(8, dtype=float).reshape(2, 4)
    feats = np.stack([gold / 100, gold], axis=-1)  # (P=2, S=4, F=2)
    pair_f, pair_g, pair_w = ladder_pairs(feats, gold)
    assert pair_f.shape == (2, 2, 2, 2)
    assert pair_g.tolist() == [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]
    assert pair_w.tolist() == pair_g.astype(int).tolist()


def test_pair_correctness_counts_score_ties_half_and_skips_gold_ties() -> None:
    score_diff = np.array([[1.0, -2.0, 0.0, 3.0]])
    gold_diff = np.array([[0.5, 0.5, 0.5, 0.0]])
    correct = pair_correct(score_diff, gold_diff)
    assert correct[0, :3].tolist() == [1.0, 0.0, 0.5]
    assert np.isnan(correct[0, 3])


def test_clustered_accuracy_weights_pairs_and_widens_with_prompt_spread() -> None:
    """Prompt 0: 3 of 4 right, prompt 1: 1 of 2 right (two gold ties skipped): 4/6 overall.
    Every prompt alike gives a point interval; prompts that disagree give a wide one."""
    correct = np.array([[1, 1, 1, 0], [1, 0, np.nan, np.nan]], dtype=float)
    point, lo, hi = clustered_accuracy(correct)
    assert point == pytest.approx(4 / 6)
    assert lo < point < hi
    same = clustered_accuracy(np.tile([[1.0, 0.0]], (50, 1)))
    assert same == pytest.approx((0.5, 0.5, 0.5))
    split = clustered_accuracy(np.repeat([[1.0], [0.0]], 25, axis=0))
    assert split[2] - split[1] > 0.2
