"""The real-data regret bench's core on constructed checkpoints (no database, no gold scorer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.decision_bench import ADAPTIVE
from bench.selection_regret import (
    RealLab,
    gold_win_rates,
    load_lab,
    run_seeds,
    save_lab,
    simulate_study,
    summary_rows,
)
from judging.gold import RaterSpec
from judging.stats.allocation import AllocationRule

SPEC = RaterSpec(temperature=0.08, position_bias=0.2)


def _lab(prompts: int = 120) -> RealLab:
    """Four checkpoints of one run: gold peaks at the second while the proxy keeps rising."""
    rng = np.random.default_rng(0)
    means = np.array([0.02, 0.06, 0.03, -0.04])
    gap = means + rng.normal(0, 0.1, (prompts, 4))
    proxy = np.array([0.1, 0.2, 0.3, 0.4]) + rng.normal(0, 0.05, (prompts, 4))
    return RealLab(
        labels=("r@1", "r@2", "r@3", "r@4"), run=("r",) * 4, step=np.array([1, 2, 3, 4]),
        gap=gap, length_diff=rng.normal(0, 100, (prompts, 4)), proxy_by_prompt=proxy,
        kl_by_prompt=np.tile([1.0, 2.0, 4.0, 8.0], (prompts, 1)),
        tokens_by_prompt=np.full((prompts, 4), 100.0), flag_sets=((),) * 4,
    )  # fmt: skip


def test_gold_win_rate_averages_both_sides() -> None:
    assert gold_win_rates(np.zeros((3, 1)), SPEC)[0] == pytest.approx(0.5)
    one = gold_win_rates(np.full((1, 1), 0.08), SPEC)[0]
    expected = 0.5 * (1 / (1 + np.exp(-1.2)) + 1 / (1 + np.exp(-0.8)))
    assert one == pytest.approx(expected)


def test_a_world_resamples_prompts_and_simulates_every_pair() -> None:
    lab = _lab()
    rng = np.random.default_rng(1)
    world = lab.drawn(rng.integers(0, 120, 120))
    study = simulate_study(world, SPEC, 2, rng)
    assert len(study.score) == 120 * 4 * 2
    assert not np.array_equal(world.proxy, lab.proxy)  # the proxy mean moves with the prompts
    assert study.noise_free.shape == (120, 4)


def test_every_rule_is_scored_on_every_seed_and_the_proxy_overshoots() -> None:
    rows = {r["rule"]: r for r in summary_rows(run_seeds(_lab(), SPEC, 2, seeds=6, n_boot=200))}
    assert {r["seeds"] for r in rows.values()} == {6}
    assert rows["max proxy"]["regret"] > 0.1  # it takes the last, worst checkpoint
    assert rows["product"]["regret"] < rows["max proxy"]["regret"]
    assert rows["limit (noise-free, same prompts)"]["regret"] < 0.03


def test_adaptive_replay_on_real_checkpoints_uses_fewer_verdicts_and_keeps_the_lab(
    tmp_path: Path,
) -> None:
    """`--adaptive` replays the allocation on each world: its three rows are scored on every
    seed, adaptive never uses more verdicts than the full study, and "uniform, as many
    verdicts" spends what adaptive spent; `--lab` round-trips the arrays."""
    lab = _lab(prompts=60)
    path = tmp_path / "lab.npz"
    save_lab(lab, path)
    again = load_lab(path)
    assert again.labels == lab.labels and again.flag_sets == lab.flag_sets
    assert np.array_equal(again.gap, lab.gap)
    outcomes = run_seeds(again, SPEC, 2, seeds=3, n_boot=200, allocation=AllocationRule())
    rows = {r["rule"]: r for r in summary_rows(outcomes)}
    full, adaptive = rows["product"], rows[ADAPTIVE]
    assert adaptive["seeds"] == 3 and full["verdicts"] == 60 * 4 * 2
    assert adaptive["verdicts"] <= full["verdicts"]
    same = rows["uniform, as many verdicts as adaptive"]["verdicts"]
    assert abs(same - adaptive["verdicts"]) <= 4 * 2  # whole prompts of every checkpoint
