"""The verdicts adaptive allocation needs to reach uniform allocation's regret, per family.

The decision bench (`bench/decision_bench.py --adaptive`) replays adaptive allocation at the
product's settings and reports the verdicts it saves; its regret is then a little above that of
uniform allocation at the full budget. This bench asks the question the other way round: for
each family of `bench/decision_worlds.py`, which allocation settings reach the full budget's
regret within the intervals, and with how many verdicts.

Each world's full-budget study (2 raters x 200 prompts per checkpoint) is drawn once, exactly as
the decision bench draws it. Uniform allocation is the product's pick on all of it; adaptive
allocation is replayed on the same verdicts for every (target, keep) of a grid (keep 0 is the
stopping rule alone, no elimination). Per family and setting it prints the verdicts saved
against the full budget, the regret difference adaptive - uniform paired by world with its 95%
interval, P(within delta) of both, and the stated P against the observed share within delta.

Parity: a setting whose interval for the paired difference reaches 0 (no more regret than
uniform within the intervals); per family, the parity setting with the fewest verdicts, and,
for one setting used everywhere (what the product has), the one that is at parity in every
family with the largest mean saving, if any.

    .venv/bin/python bench/allocation_parity.py --worlds 100 [--targets 0.9,0.95,0.98]
        [--keeps 0.3,0.05,0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.decision_bench import (  # noqa: E402
    BUDGETS,
    PRODUCT,
    adaptive,
    evidence_of,
    mean_ci,
    prefix,
)
from bench.decision_worlds import FAMILIES, Study, World, draw_study  # noqa: E402
from judging.stats.allocation import AllocationRule  # noqa: E402
from judging.stats.recommend import decide, fit_evidence  # noqa: E402
from judging.stats.rule import RecommendationRule  # noqa: E402

ORACLE = "oracle elimination (knows the truth)"


@dataclass(frozen=True)
class Run:
    """One allocation on one world."""

    regret: float
    verdicts: int
    stated: float | None
    within: bool


def setting_name(target: float, keep: float) -> str:
    return f"target {target:g}, keep {keep:g}"


def grid(targets: list[float], keeps: list[float]) -> dict[str, AllocationRule]:
    base = AllocationRule()
    return {
        setting_name(t, k): replace(base, target=t, keep=k) for t in targets for k in keeps if k < t
    }


def _run(gold: np.ndarray, pick: int | None, verdicts: int, stated: float | None) -> Run:
    regret = float(gold.max()) - (0.5 if pick is None else float(gold[pick]))
    return Run(regret, verdicts, stated, regret <= PRODUCT.delta + 1e-12)


def oracle_elimination(
    world: World, study: Study, prompts: int, rule: RecommendationRule, burn_in: int
) -> tuple[int | None, float | None, int]:
    """How much eliminating could save if it knew the truth: after the burn-in, only the
    checkpoints truly within delta of the gold-best are judged further, on every prompt, and
    the product decides among them on their evidence (the others' burn-in verdicts are spent,
    not used: with 30 prompts against 200 a lucky outsider could otherwise be picked). A real
    rule must also keep the checkpoints it cannot yet tell apart from them, so its saving at
    uniform's regret is below this one's unless it stops before the contenders have all their
    prompts. Returns (pick, stated P, verdicts)."""
    available = np.array([world.available(k, prompts) for k in range(world.n)])
    kept = world.gold >= world.gold.max() - rule.delta - 1e-12
    frontier = np.where(kept, available, np.minimum(burn_in, available))
    evidence = [e for e in evidence_of(world, prefix(study, frontier)) if kept[e.checkpoint_id]]
    d = decide(evidence, fit_evidence(evidence, rule), rule)  # ids stay the world's indices
    return d.choice, d.p_within_delta, int(np.sum(study.prompt < frontier[study.column]))


def run_world(job: tuple[str, int, dict[str, AllocationRule]]) -> dict[str, Any]:
    """Uniform and every adaptive setting on one world (the decision bench's full-budget draw)."""
    family, index, settings = job
    rng = np.random.default_rng([zlib.crc32(family.encode()), index])
    world = FAMILIES[family](rng)
    prompts, raters = BUDGETS["full"]
    study = draw_study(world, rng, prompts, raters)
    rule = replace(PRODUCT, seed=index)
    evidence = evidence_of(world, study)
    d = decide(evidence, fit_evidence(evidence, rule), rule)
    out: dict[str, Any] = {
        "family": family,
        "uniform": _run(world.gold, d.choice, len(study.score), d.p_within_delta),
    }
    for name, allocation in settings.items():
        pick, stated, used = adaptive(world, study, prompts, rule, allocation)
        out[name] = _run(world.gold, pick, used, stated)
    pick, stated, used = oracle_elimination(world, study, prompts, rule, AllocationRule().burn_in)
    out[ORACLE] = _run(world.gold, pick, used, stated)
    return out


def compare(uniform: list[Run], adaptive_runs: list[Run]) -> dict[str, Any]:
    """Saving and the paired regret difference of one setting against uniform, on one family."""
    diff, half = mean_ci([a.regret - u.regret for a, u in zip(adaptive_runs, uniform, strict=True)])
    verdicts = float(np.mean([a.verdicts for a in adaptive_runs]))
    stated = [a.stated for a in adaptive_runs if a.stated is not None]
    return {
        "saving": 1 - verdicts / float(np.mean([u.verdicts for u in uniform])),
        "verdicts": verdicts,
        "diff": diff,
        "diff_ci": half,
        "at_parity": bool(diff - half <= 0),
        "within": float(np.mean([a.within for a in adaptive_runs])),
        "uniform_within": float(np.mean([u.within for u in uniform])),
        "stated": float(np.mean(stated)) if stated else None,
    }


def best_at_parity(rows: dict[str, dict[str, Any]]) -> str | None:
    """The setting at parity with the largest saving (None: no setting reaches parity)."""
    ok = [name for name, r in rows.items() if r["at_parity"] and name != ORACLE]
    return max(ok, key=lambda name: rows[name]["saving"]) if ok else None


def one_setting_everywhere(table: dict[str, dict[str, dict[str, Any]]]) -> str | None:
    """The setting at parity in every family with the largest mean saving, if any."""
    names = [n for n in next(iter(table.values())) if n != ORACLE]
    ok = [n for n in names if all(rows[n]["at_parity"] for rows in table.values())]
    return max(ok, key=lambda n: _mean_saving(table, n), default=None)


def _mean_saving(table: dict[str, dict[str, dict[str, Any]]], name: str) -> float:
    return float(np.mean([rows[name]["saving"] for rows in table.values()]))


def summarise(results: list[dict[str, Any]], settings: list[str]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for family in dict.fromkeys(r["family"] for r in results):
        mine = [r for r in results if r["family"] == family]
        uniform = [r["uniform"] for r in mine]
        table[family] = {
            name: compare(uniform, [r[name] for r in mine]) for name in (*settings, ORACLE)
        }
    return table


def print_report(table: dict[str, dict[str, dict[str, Any]]], worlds: int) -> None:
    for family, rows in table.items():
        print(f"\n### {family} ({worlds} worlds)\n")
        print("| setting | verdicts saved | regret adaptive - uniform | within delta (uniform) "
              "| stated P | parity |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        for name, r in rows.items():
            stated = f"{r['stated']:.3f}" if r["stated"] is not None else ""
            print(f"| {name} | {r['saving']:.1%} | {r['diff']:+.4f} ± {r['diff_ci']:.4f} | "
                  f"{r['within']:.2f} ({r['uniform_within']:.2f}) | {stated} | "
                  f"{'yes' if r['at_parity'] else 'no'} |")  # fmt: skip
    print("\n### Fewest verdicts at parity, per family\n")
    print("| family | setting | verdicts saved | regret adaptive - uniform "
          "| oracle elimination: saved, regret - uniform |")  # fmt: skip
    print("|---|---|---|---|---|")
    savings, oracle = [], []
    for family, rows in table.items():
        o = rows[ORACLE]
        oracle.append(o["saving"])
        limit = f"{o['saving']:.1%}, {o['diff']:+.4f} ± {o['diff_ci']:.4f}"
        best = best_at_parity(rows)
        if best is None:
            print(f"| {family} | none of the grid | | | {limit} |")
            continue
        r = rows[best]
        savings.append(r["saving"])
        print(f"| {family} | {best} | {r['saving']:.1%} | {r['diff']:+.4f} ± {r['diff_ci']:.4f} "
              f"| {limit} |")  # fmt: skip
    if len(savings) == len(table):
        print(f"\nmean saving at parity, each family its own setting: {np.mean(savings):.1%}")
    print(f"mean saving of oracle elimination: {np.mean(oracle):.1%}")
    everywhere = one_setting_everywhere(table)
    if everywhere is None:
        print("no single setting of the grid is at parity in every family")
    else:
        mean = _mean_saving(table, everywhere)
        print(f"one setting at parity in every family: {everywhere}, mean saving {mean:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, default=100, help="worlds per family")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--targets", default="0.9,0.95,0.98")
    parser.add_argument("--keeps", default=f"{AllocationRule().keep:g},0.05,0")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, help="write the table here")
    args = parser.parse_args()
    settings = grid([float(x) for x in args.targets.split(",")],
                    [float(x) for x in args.keeps.split(",")])  # fmt: skip
    families = args.families.split(",")
    jobs = [(f, i, settings) for f in families for i in range(args.worlds)]
    start = time.perf_counter()

    from rich.progress import Progress

    results: list[dict[str, Any]] = []
    with Progress() as bar, ProcessPoolExecutor(max_workers=args.workers) as pool:
        task = bar.add_task("worlds", total=len(jobs))
        for result in pool.map(run_world, jobs, chunksize=2):
            results.append(result)
            bar.advance(task)
    table = summarise(results, list(settings))
    print_report(table, args.worlds)
    print(f"\n{args.worlds} worlds x {len(families)} families x {len(settings)} settings in "
          f"{time.perf_counter() - start:.0f} s ({args.workers} workers)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
