"""The decision bench: selection rules against a known truth, over many random worlds.

For each scenario family (`bench/decision_worlds.py`) it draws `--worlds` worlds (the checkpoints'
true curves and per-prompt effects drawn anew for each), simulates a study of each at two budgets
(2 raters x 200 prompts per checkpoint, and half of it), lets every rule pick, and reports per
family and budget:

- mean regret: the gold win rate of the gold-best checkpoint minus that of the pick, in win-rate
  points and as a share of the world's gold range, with 95% intervals across worlds;
- P(pick within delta of the gold-best), with a 95% interval;
- failures: worlds where the rule picked nothing (its regret is then that of keeping the
  reference, gold win rate 0.5: every rule is scored on every world);
- for the product, the calibration of its stated P(within delta): stated against observed, in bins.

Rules: the product's (`RecommendationRule()`), its ablations (ranked without length control,
without hard flags, without the KL guard, preferring lower KL within delta, and without the
prior and eligibility), and the naive ones: raw win rate, LC win rate (the product's fit, no
eligibility), max proxy reward, last checkpoint, lowest KL with a raw win rate above 1/2, and
the limit: the noise-free win rate on the judged prompts (only prompt sampling left).

    .venv/bin/python bench/decision_bench.py [--worlds 300] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os

# One BLAS thread per worker process: the bench parallelises over worlds.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
import sys  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Protocol  # noqa: E402

import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.decision_worlds import FAMILIES, Study, draw_study  # noqa: E402
from judging.stats.allocation import AllocationRule, allocation_state  # noqa: E402
from judging.stats.divergence import Estimate  # noqa: E402
from judging.stats.lc_winrate import LCModel, LengthVote  # noqa: E402
from judging.stats.recommend import decide, fit_evidence  # noqa: E402
from judging.stats.rule import CheckpointEvidence, RecommendationRule  # noqa: E402

BUDGETS = {"full": (200, 2), "half": (100, 2)}
"""(prompts, raters per judged pair) per checkpoint."""
BINS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0001)
PRODUCT = RecommendationRule()
ABLATIONS: dict[str, RecommendationRule] = {
    "product": PRODUCT,
    "product, ranked without LC": replace(PRODUCT, metric="adjusted"),
    "product, without hard flags": replace(PRODUCT, hard_flags=()),
    "product, without KL guard": replace(PRODUCT, max_kl_per_token=None),
    "product, lower KL within delta": replace(PRODUCT, prefer_lower_kl_within_delta=True),
    "product, exchangeable prior": replace(PRODUCT, prior="exchangeable"),
    "product, no prior (raw resamples)": replace(PRODUCT, prior="none"),
}
UNSHRUNK = replace(PRODUCT, model=LCModel(virtual_ties=0.0), min_prompts=0, max_interval_width=None)


def _exact(value: float) -> Estimate:
    return Estimate(float(value), float(value), float(value))


class Lab(Protocol):
    """What the rules read about the checkpoints besides the verdicts (a simulated `World`, or
    real checkpoints in `bench/selection_regret.py`)."""

    @property
    def run(self) -> tuple[str, ...]: ...
    @property
    def step(self) -> NDArray[np.int64]: ...
    @property
    def kl(self) -> NDArray[np.float64]: ...
    @property
    def tokens(self) -> NDArray[np.float64]: ...
    @property
    def proxy(self) -> NDArray[np.float64]: ...
    @property
    def n(self) -> int: ...

    def flags(self) -> list[tuple[str, ...]]: ...

    def available(self, k: int, prompts: int) -> int:
        """Prompts checkpoint `k` can be judged on (of `prompts`)."""
        ...


def evidence_of(world: Lab, study: Study) -> list[CheckpointEvidence]:
    flags = world.flags()
    out = []
    for k in range(world.n):
        mine = study.column == k
        votes = tuple(
            LengthVote(int(p), float(s), float(d))
            for p, s, d in zip(
                study.prompt[mine], study.score[mine], study.length_diff[mine], strict=True
            )
        )
        out.append(
            CheckpointEvidence(
                checkpoint_id=k, label=f"{world.run[k]}@{world.step[k]}", run=world.run[k],
                step=int(world.step[k]), votes=votes,
                reward=_exact(world.proxy[k]), kl=_exact(world.kl[k]),
                length_tokens=float(world.tokens[k]), flags=flags[k],
            )
        )  # fmt: skip
    return out


def _argmax(values: np.ndarray) -> int | None:
    if np.all(np.isnan(values)):
        return None
    return int(np.nanargmax(values))


def _last(world: Lab) -> int:
    """The final checkpoint; between runs, that of the run whose final proxy is higher."""
    finals = {r: max(k for k in range(world.n) if world.run[k] == r) for r in set(world.run)}
    return max(finals.values(), key=lambda k: world.proxy[k])


def naive_picks(world: Lab, study: Study, lc: np.ndarray) -> dict[str, int | None]:
    sums = np.bincount(study.column, study.score, minlength=world.n)
    counts = np.bincount(study.column, minlength=world.n)
    raw = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    positive = [k for k in range(world.n) if raw[k] > 0.5]
    per_token = world.kl / world.tokens
    return {
        "raw win rate": _argmax(raw),
        "LC win rate": _argmax(lc),
        "max proxy": int(np.argmax(world.proxy)),
        "last checkpoint": _last(world),
        "lowest KL with win rate > 1/2": min(positive, key=lambda k: per_token[k])
        if positive
        else None,
        "limit (noise-free, same prompts)": _argmax(np.nanmean(study.noise_free, axis=0)),
    }


@dataclass(frozen=True)
class Outcome:
    world: int
    family: str
    budget: str
    rule: str
    regret: float
    """Gold win-rate points."""
    share: float | None
    """Share of the gold range (None when the range is zero)."""
    within: bool
    failed: bool
    stated: float | None = None
    """The product's stated P(within delta) (product rules only)."""
    verdicts: int | None = None
    """Verdicts the rule's study used."""


def outcome(index: int, gold: np.ndarray, family: str, budget: str, rule: str,
             pick: int | None, stated: float | None, verdicts: int | None = None
             ) -> Outcome:  # fmt: skip
    value = 0.5 if pick is None else float(gold[pick])
    regret = float(gold.max()) - value
    spread = float(gold.max() - gold.min())
    share = regret / spread if spread > 0 else None
    within = regret <= PRODUCT.delta + 1e-12
    return Outcome(index, family, budget, rule, regret, share, within, pick is None, stated,
                   verdicts)  # fmt: skip


ADAPTIVE = "adaptive (successive elimination + stopping rule)"
ALLOCATION = AllocationRule()


def prefix(study: Study, frontier: np.ndarray) -> Study:
    """The verdicts on each checkpoint's first `frontier[k]` prompts (the fixed random order)."""
    keep = study.prompt < frontier[study.column]
    return Study(study.prompt[keep], study.column[keep], study.score[keep],
                 study.length_diff[keep], study.noise_free)  # fmt: skip


def adaptive(
    world: Lab, study: Study, prompts: int, rule: RecommendationRule,
    allocation: AllocationRule = ALLOCATION,
) -> tuple[int | None, float | None, int]:  # fmt: skip
    """Successive elimination (`stats.allocation`) replayed on a drawn study: every contender is
    served the next prompts of one fixed order up to the rule's next look; returns (pick,
    stated P(within delta), verdicts used)."""
    available = np.array([world.available(k, prompts) for k in range(world.n)])
    frontier = np.zeros(world.n, dtype=np.int64)
    contenders = np.arange(world.n)
    state = None
    for check in (*allocation.looks, prompts):
        frontier[contenders] = np.minimum(min(check, prompts), available[contenders])
        evidence = evidence_of(world, prefix(study, frontier))
        exhausted = {k for k in range(world.n) if frontier[k] >= available[k]}
        state = allocation_state(evidence, rule, allocation, exhausted)
        if state.decided or check >= prompts:
            break
        contenders = np.array(state.contenders, dtype=np.int64)
    used = int(np.sum(study.prompt < frontier[study.column]))
    assert state is not None
    if state.leader is None and not state.decided:
        d = decide(evidence, fit_evidence(evidence, rule), rule)
        return d.choice, d.p_within_delta, used
    return state.leader, state.p_within_delta, used


def adaptive_outcomes(
    index: int, world: Lab, where: tuple[np.ndarray, str, str], study: Study, prompts: int,
    raters: int, rule: RecommendationRule, allocation: AllocationRule = ALLOCATION,
) -> list[Outcome]:  # fmt: skip
    """Adaptive allocation, uniform allocation until the study is decided (the stopping rule
    alone), and uniform allocation spending the same number of verdicts as adaptive; `where` is
    (gold win rates, family, budget) of the outcomes."""
    pick, stated, used = adaptive(world, study, prompts, rule, allocation)
    stop_pick, stop_stated, stop_used = adaptive(
        world, study, prompts, rule, replace(allocation, keep=0.0)
    )
    per_checkpoint = max(1, used // (raters * world.n))
    evidence = evidence_of(world, prefix(study, np.full(world.n, per_checkpoint)))
    d = decide(evidence, fit_evidence(evidence, rule), rule)
    same = int(sum(len(e.votes) for e in evidence))
    return [
        outcome(index, *where, ADAPTIVE, pick, stated, used),
        outcome(index, *where, "uniform until decided (stopping rule only)", stop_pick,
                 stop_stated, stop_used),
        outcome(index, *where, "uniform, as many verdicts as adaptive", d.choice,
                 d.p_within_delta, same),
    ]  # fmt: skip


Pick = tuple[int | None, float | None]
"""A rule's choice (None: nothing recommended) and its stated P(within delta), if it states one."""


def rule_picks(lab: Lab, study: Study, n_boot: int, seed: int) -> dict[str, Pick]:
    """Every rule's pick on one study: the product and its ablations, then the naive rules."""
    evidence = evidence_of(lab, study)
    rules = {name: replace(rule, n_boot=n_boot, seed=seed) for name, rule in ABLATIONS.items()}
    fitted = fit_evidence(evidence, rules["product"])
    picks: dict[str, Pick] = {}
    for name, rule in rules.items():
        d = decide(evidence, fitted, rule)
        picks[name] = d.choice, d.p_within_delta
    unshrunk = replace(UNSHRUNK, n_boot=n_boot, seed=seed)
    d = decide(evidence, fit_evidence(evidence, unshrunk), unshrunk)
    picks["product, without prior or eligibility"] = d.choice, d.p_within_delta
    lc = np.full(lab.n, np.nan)
    if fitted is not None:
        lc[[int(k) for k in fitted.keys]] = fitted.lc  # type: ignore[call-overload]
    picks |= {name: (pick, None) for name, pick in naive_picks(lab, study, lc).items()}
    return picks


def run_world(job: tuple[str, int, int, bool]) -> list[Outcome]:
    """Every rule on one world, at every budget (and adaptive allocation when asked)."""
    family, index, n_boot, with_adaptive = job
    rng = np.random.default_rng([zlib.crc32(family.encode()), index])
    world = FAMILIES[family](rng)
    out = []
    for budget, (prompts, raters) in BUDGETS.items():
        study = draw_study(world, rng, prompts, raters)
        for name, (pick, stated) in rule_picks(world, study, n_boot, index).items():
            used = len(study.score) if name.startswith("product") else None
            out.append(outcome(index, world.gold, world.family, budget, name, pick, stated, used))
        if with_adaptive and budget == "full":
            product = replace(PRODUCT, n_boot=n_boot, seed=index)
            where = (world.gold, world.family, "full")
            out += adaptive_outcomes(index, world, where, study, prompts, raters, product)
    return out


def mean_ci(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of its normal 95% interval) across worlds."""
    arr = np.asarray(values, dtype=float)
    if len(arr) < 2:
        return float(arr.mean()) if len(arr) else float("nan"), float("nan")
    return float(arr.mean()), float(1.96 * arr.std(ddof=1) / np.sqrt(len(arr)))


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    """Per (family, budget, rule): regret (points and share) and P(within delta), with 95%
    intervals across worlds, failures; and the product's calibration per budget."""
    groups: dict[tuple[str, str, str], list[Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[(o.family, o.budget, o.rule)].append(o)
    rows = []
    for (family, budget, rule), os_ in groups.items():
        regret, regret_ci = mean_ci([o.regret for o in os_])
        shares = [o.share for o in os_ if o.share is not None]
        share, share_ci = mean_ci(shares) if shares else (float("nan"), float("nan"))
        within, within_ci = mean_ci([float(o.within) for o in os_])
        used = [o.verdicts for o in os_ if o.verdicts is not None]
        stated = [o.stated for o in os_ if o.stated is not None]
        rows.append({"family": family, "budget": budget, "rule": rule, "worlds": len(os_),
                     "regret": regret, "regret_ci": regret_ci, "share": share,
                     "share_ci": share_ci, "within": within, "within_ci": within_ci,
                     "failures": sum(o.failed for o in os_),
                     "stated": float(np.mean(stated)) if stated else None,
                     "verdicts": float(np.mean(used)) if used else None})  # fmt: skip
    _paired_with_product(rows, outcomes)
    return {"rows": rows, "calibration": calibration(outcomes),
            "adaptive_calibration": calibration(outcomes, ADAPTIVE)}  # fmt: skip


def _paired_with_product(rows: list[dict[str, Any]], outcomes: list[Outcome]) -> None:
    """Per row, the mean over the same worlds of (product's regret - the rule's), with a 95%
    interval: paired, so far tighter than comparing the two means."""
    regret = {(o.family, o.budget, o.rule, o.world): o.regret for o in outcomes}
    for r in rows:
        diffs = [
            regret[(r["family"], r["budget"], "product", w)] - value
            for (f, b, rule, w), value in regret.items()
            if (f, b, rule) == (r["family"], r["budget"], r["rule"])
            and (f, b, "product", w) in regret
        ]
        r["vs_product"] = mean_ci(diffs) if diffs and r["rule"] != "product" else None


def calibration(outcomes: list[Outcome], rule: str = "product") -> list[dict[str, Any]]:
    """Stated P(within delta) against the observed share of picks within delta, in bins, over
    every family (per budget)."""
    out = []
    for budget in BUDGETS:
        mine = [o for o in outcomes if o.rule == rule and o.budget == budget and not o.failed]
        stated = np.array([o.stated for o in mine], dtype=float)
        hit = np.array([o.within for o in mine], dtype=float)
        for low, high in itertools.pairwise(BINS):
            sel = (stated >= low) & (stated < high)
            if sel.any():
                out.append({"budget": budget, "bin": [low, min(high, 1.0)],
                            "worlds": int(sel.sum()), "stated": float(stated[sel].mean()),
                            "observed": float(hit[sel].mean())})  # fmt: skip
    return out


def jobs(families: list[str], worlds: int, n_boot: int, with_adaptive: bool
         ) -> Iterator[tuple[str, int, int, bool]]:  # fmt: skip
    for family in families:
        for i in range(worlds):
            yield family, i, n_boot, with_adaptive


def run(families: list[str], worlds: int, n_boot: int, workers: int, with_adaptive: bool = False,
        progress: Callable[[int, int], None] | None = None) -> list[Outcome]:  # fmt: skip
    todo = list(jobs(families, worlds, n_boot, with_adaptive))
    out: list[Outcome] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for i, result in enumerate(pool.map(run_world, todo, chunksize=4), start=1):
            out += result
            if progress:
                progress(i, len(todo))
    return out


def print_tables(summary: dict[str, Any]) -> None:
    rows = summary["rows"]
    for family in dict.fromkeys(r["family"] for r in rows):
        for budget in BUDGETS:
            mine = [r for r in rows if r["family"] == family and r["budget"] == budget]
            if not mine:
                continue
            print(f"\n### {family}, budget {budget} ({mine[0]['worlds']} worlds)\n")
            print("| rule | regret (win-rate points) | regret (share of gold range) | "
                  "P(within delta) | failures | stated P | verdicts | "
                  "product - rule |")  # fmt: skip
            print("|---|---|---|---|---|---|---|---|")
            for r in mine:
                stated = f"{r['stated']:.2f}" if r["stated"] is not None else ""
                used = f"{r['verdicts']:.0f}" if r["verdicts"] is not None else ""
                vs = r.get("vs_product")
                paired = f"{vs[0]:+.4f} ± {vs[1]:.4f}" if vs else ""
                print(f"| {r['rule']} | {r['regret']:.4f} ± {r['regret_ci']:.4f} | "
                      f"{r['share']:.3f} ± {r['share_ci']:.3f} | "
                      f"{r['within']:.2f} ± {r['within_ci']:.2f} | {r['failures']} | {stated} | "
                      f"{used} | {paired} |")  # fmt: skip
    for title, key in (("the product's stated P(within delta)", "calibration"),
                       ("P(within delta) stated when the adaptive study stopped",
                        "adaptive_calibration")):  # fmt: skip
        print_calibration(title, summary[key])


def print_calibration(title: str, bins: list[dict[str, Any]]) -> None:
    if not bins:
        return
    print(f"\n### Calibration of {title}\n")
    print("| budget | stated bin | worlds | mean stated | observed |")
    print("|---|---|---|---|---|")
    for c in bins:
        print(f"| {c['budget']} | [{c['bin'][0]:.2f}, {c['bin'][1]:.2f}) | {c['worlds']} | "
              f"{c['stated']:.3f} | {c['observed']:.3f} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, default=300, help="worlds per family")
    parser.add_argument("--quick", action="store_true", help="40 worlds per family (CI)")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--n-boot", type=int, default=PRODUCT.n_boot)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument(
        "--adaptive", action="store_true", help="also replay adaptive allocation (full budget)"
    )
    args = parser.parse_args()
    worlds = 40 if args.quick else args.worlds
    families = args.families.split(",")
    start = time.perf_counter()

    from rich.progress import Progress

    with Progress() as bar:
        task = bar.add_task("worlds", total=worlds * len(families))
        outcomes = run(families, worlds, args.n_boot, args.workers, args.adaptive,
                       lambda done, _total: bar.update(task, completed=done))  # fmt: skip
    summary = summarise(outcomes)
    summary["settings"] = {"worlds": worlds, "n_boot": args.n_boot, "delta": PRODUCT.delta,
                           "budgets": BUDGETS, "seconds": time.perf_counter() - start}  # fmt: skip
    print_tables(summary)
    print(f"\n{worlds} worlds x {len(families)} families x {len(BUDGETS)} budgets in "
          f"{summary['settings']['seconds']:.0f} s ({args.workers} workers)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
