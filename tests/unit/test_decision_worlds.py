"""The decision bench's simulation maths: gold win rates, the families' shapes, the raters."""

from __future__ import annotations

import numpy as np
import pytest

from bench.decision_worlds import (
    FAMILIES,
    ITEM_SD,
    PROMPT_SD,
    draw_study,
    gao_hump,
    gold_win_rate,
    rater_agreement,
    sigmoid,
    sparse,
    two_runs,
)


def test_gold_win_rate_is_the_expectation_over_prompts_and_items() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, np.hypot(PROMPT_SD, ITEM_SD), 400_000)
    for quality in (-0.5, 0.0, 0.7):
        assert gold_win_rate(np.array([quality]))[0] == pytest.approx(
            float(np.mean(sigmoid(quality + z))), abs=2e-3
        )
    assert gold_win_rate(np.array([0.0]))[0] == pytest.approx(0.5, abs=1e-12)


def test_raters_agree_65_to_75_percent() -> None:
    rng = np.random.default_rng(1)
    worlds = [FAMILIES[f](rng) for f in FAMILIES for _ in range(3)]
    agreements = [rater_agreement(draw_study(w, rng, 200, 2)) for w in worlds]
    assert 0.65 <= float(np.mean(agreements)) <= 0.75


def test_the_gao_hump_rises_then_falls_while_the_proxy_rises() -> None:
    rng = np.random.default_rng(2)
    humps = 0
    for _ in range(50):
        world = gao_hump(rng)
        best = int(np.argmax(world.gold))
        humps += 0 < best < world.n - 1 and world.gold[-1] < world.gold[best] - 0.01
        assert np.corrcoef(world.proxy, np.sqrt(world.kl))[0, 1] > 0.9
    assert humps >= 40


def test_votes_follow_the_rater_model() -> None:
    """With no length bias the raters' mean verdict is the gold win rate (position bias averages
    out over random sides)."""
    rng = np.random.default_rng(3)
    world = gao_hump(rng)
    study = draw_study(world, rng, 4000, 2)
    observed = np.bincount(study.column, study.score) / np.bincount(study.column)
    assert observed == pytest.approx(world.gold, abs=0.02)


def test_a_sparse_checkpoint_is_judged_on_its_few_prompts_only() -> None:
    rng = np.random.default_rng(4)
    world = sparse(rng)
    ((k, count),) = world.sparse.items()
    study = draw_study(world, rng, 200, 2)
    assert set(study.prompt[study.column == k]) == set(range(count))
    assert np.sum(study.column == k) == 2 * count
    assert np.isnan(study.noise_free[count:, k]).all()


def test_two_runs_blow_up_one_run_past_the_kl_guard() -> None:
    rng = np.random.default_rng(5)
    for _ in range(20):
        world = two_runs(rng)
        per_token = world.kl / world.tokens
        assert per_token[5] > 0.25  # the low-coefficient run's last checkpoint
        assert (np.delete(per_token, 5) < 0.25).all()
        assert set(world.run) == {"low-kl-coef", "high-kl-coef"}
