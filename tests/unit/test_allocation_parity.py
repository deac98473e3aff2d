"""The parity bench's arithmetic on hand-computed cases, and one real world end to end."""

from __future__ import annotations

import numpy as np
import pytest

from bench.allocation_parity import (
    ORACLE,
    Run,
    best_at_parity,
    compare,
    grid,
    one_setting_everywhere,
    oracle_elimination,
    run_world,
)
from bench.decision_bench import BUDGETS, PRODUCT
from bench.decision_worlds import FAMILIES, draw_study


def _runs(regrets: list[float], verdicts: int) -> list[Run]:
    return [Run(r, verdicts, 0.9, r <= 0.03) for r in regrets]


def test_compare_pairs_regrets_by_world() -> None:
    uniform = _runs([0.00, 0.01, 0.02, 0.01], 1000)
    # Differences 0.01, 0.01, 0.01, 0.01: mean 0.01 with no spread, so not at parity.
    worse = compare(uniform, _runs([0.01, 0.02, 0.03, 0.02], 400))
    assert worse["saving"] == pytest.approx(0.6)
    assert worse["diff"] == pytest.approx(0.01)
    assert worse["diff_ci"] == pytest.approx(0.0, abs=1e-12)
    assert not worse["at_parity"]
    # Differences -0.01, +0.01, -0.01, +0.01: mean 0, interval around it: at parity.
    level = compare(uniform, _runs([-0.01, 0.02, 0.01, 0.02], 500))
    assert level["diff"] == pytest.approx(0.0, abs=1e-12)
    assert level["at_parity"]
    assert level["within"] == 1.0


def _row(saving: float, at_parity: bool) -> dict[str, object]:
    return {"saving": saving, "at_parity": at_parity}


def test_the_cheapest_setting_at_parity_is_chosen() -> None:
    rows = {"a": _row(0.6, False), "b": _row(0.5, True), "c": _row(0.3, True)}
    assert best_at_parity(rows) == "b"
    assert best_at_parity({"a": _row(0.6, False)}) is None


def test_one_setting_must_be_at_parity_in_every_family() -> None:
    table = {
        "steady": {"a": _row(0.6, False), "b": _row(0.5, True), "c": _row(0.3, True)},
        "flat": {"a": _row(0.5, True), "b": _row(0.2, True), "c": _row(0.45, True)},
    }
    # a is out (steady); b saves (0.5 + 0.2) / 2 = 0.35, c (0.3 + 0.45) / 2 = 0.375.
    assert one_setting_everywhere(table) == "c"
    table["flat"]["c"] = _row(0.45, False)
    assert one_setting_everywhere(table) == "b"
    table["flat"]["b"] = _row(0.2, False)
    assert one_setting_everywhere(table) is None


def test_grid_skips_a_keep_at_or_above_the_target() -> None:
    assert list(grid([0.9], [0.3, 0.95, 0.0])) == ["target 0.9, keep 0.3", "target 0.9, keep 0"]


def test_a_world_is_replayed_for_every_setting() -> None:
    settings = grid([0.9, 0.98], [0.3])
    out = run_world(("steady", 0, settings))
    assert out["family"] == "steady"
    uniform = out["uniform"]
    assert uniform.verdicts == 3200  # 8 checkpoints x 200 prompts x 2 raters
    lax, strict = out["target 0.9, keep 0.3"], out["target 0.98, keep 0.3"]
    # A stricter target can only stop later on the same verdicts.
    assert lax.verdicts <= strict.verdicts <= uniform.verdicts
    assert all(r.regret >= 0 for r in (uniform, lax, strict))


def test_oracle_elimination_judges_only_the_truly_close_after_the_burn_in() -> None:
    """Steady world 0: 8 checkpoints x 2 raters. Those within delta of the gold-best get all
    200 prompts, the others the 30 of the burn-in; the pick is one of the close ones."""
    rng = np.random.default_rng(7)
    world = FAMILIES["steady"](rng)
    prompts, raters = BUDGETS["full"]
    study = draw_study(world, rng, prompts, raters)
    close = world.gold >= world.gold.max() - PRODUCT.delta
    assert 0 < close.sum() < world.n  # the case is informative: some kept, some dropped
    pick, _, used = oracle_elimination(world, study, prompts, PRODUCT, burn_in=30)
    assert used == raters * (200 * int(close.sum()) + 30 * int((~close).sum()))
    assert pick is not None and close[pick]
    assert ORACLE in run_world(("steady", 0, {}))
