"""The proxy-bias sweep's pieces on hand-computed cases (no model, no gold scorer)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.proxy_bias_sweep import RUNGS, bon_win_rates, fit_logistic, relabel


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
