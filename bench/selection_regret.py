"""Selection regret on real checkpoints: does the recommendation pick the one the gold likes best?

Takes real checkpoints and their held-out generations from the database (the demo's PPO runs,
or a best-of-n ladder), scores every response with the gold preference, and treats the held-out
prompts as the population: a checkpoint's *gold win rate* is its simulated raters' expected
preference over the base on all of them (`judging.analysis.regret.gold_win_probability`).

Each seed is a world drawn anew: the prompts are resampled with replacement (so the gold-best
checkpoint on the study's prompts, the proxy means and the KL all vary with it), simulated
raters judge every (prompt, checkpoint) pair `--raters` times with random sides
(RaterSpec: temperature, position bias), and every rule of the decision bench picks on the same
study (`bench.decision_bench.rule_picks`: the product with its defaults and ablations, raw and LC
win rate, max proxy, last checkpoint, lowest KL with a win rate above 1/2, and the limit that
knows the noise-free gold preference on the drawn prompts). A rule that picks nothing is scored
as keeping the base (gold win rate 1/2); no seed is dropped for any rule. Regret = gold win rate
of the gold-best minus that of the pick (points and share of the gold range), mean with a 95%
interval across seeds.

    DATABASE_URL=... python bench/selection_regret.py [--runs demo-ppo-kl001,demo-ppo-kl01]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.decision_bench import (
    ADAPTIVE,
    PRODUCT,
    Outcome,
    adaptive_outcomes,
    calibration,
    mean_ci,
    outcome,
    print_calibration,
    rule_picks,
)
from bench.decision_worlds import Study
from judging.gold import RaterSpec
from judging.stats.allocation import AllocationRule

Array = NDArray[np.float64]


@dataclass(frozen=True)
class RealLab:
    """Real checkpoints' per-prompt numbers (P prompts x K checkpoints), seen through `rows`
    (the prompts drawn for one world; all of them by default)."""

    labels: tuple[str, ...]
    run: tuple[str, ...]
    step: NDArray[np.int64]
    gap: Array
    """Gold score of the checkpoint's response minus the base's."""
    length_diff: Array
    """Characters, checkpoint response minus base response."""
    proxy_by_prompt: Array
    kl_by_prompt: Array
    tokens_by_prompt: Array
    flag_sets: tuple[tuple[str, ...], ...]
    rows: NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, dtype=np.intp))

    def __post_init__(self) -> None:
        if not len(self.rows):
            object.__setattr__(self, "rows", np.arange(self.gap.shape[0]))

    @property
    def n(self) -> int:
        return int(self.gap.shape[1])

    @property
    def proxy(self) -> Array:
        return np.asarray(np.nanmean(self.proxy_by_prompt[self.rows], axis=0))

    @property
    def kl(self) -> Array:
        return np.asarray(np.nanmean(self.kl_by_prompt[self.rows], axis=0))

    @property
    def tokens(self) -> Array:
        return np.asarray(np.nanmean(self.tokens_by_prompt[self.rows], axis=0))

    def flags(self) -> list[tuple[str, ...]]:
        return list(self.flag_sets)

    def available(self, k: int, prompts: int) -> int:  # noqa: ARG002
        return prompts  # every checkpoint has a response to every prompt

    def drawn(self, rows: NDArray[np.intp]) -> RealLab:
        return RealLab(self.labels, self.run, self.step, self.gap, self.length_diff,
                       self.proxy_by_prompt, self.kl_by_prompt, self.tokens_by_prompt,
                       self.flag_sets, rows)  # fmt: skip


def _sigmoid(z: Array) -> Array:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))


def gold_win_rates(gap: Array, spec: RaterSpec) -> Array:
    """(K,) expected preference of a simulated rater over the base, its side at random, averaged
    over the rows of `gap` (P, K)."""
    z = gap / max(spec.temperature, 1e-9)
    both = 0.5 * (_sigmoid(z + spec.position_bias) + _sigmoid(z - spec.position_bias))
    return np.asarray(both.mean(axis=0))


def simulate_study(lab: RealLab, spec: RaterSpec, raters: int, rng: np.random.Generator) -> Study:
    """`raters` verdicts on every (drawn prompt, checkpoint) pair; the drawn prompts are
    numbered 0..P-1 (a prompt drawn twice counts as two prompts of the world)."""
    gap, diff = lab.gap[lab.rows], lab.length_diff[lab.rows]  # (P, K)
    n_p, n_k = gap.shape
    prompt = np.repeat(np.arange(n_p), n_k * raters)
    column = np.tile(np.repeat(np.arange(n_k), raters), n_p)
    side = rng.choice([-1.0, 1.0], size=len(prompt))  # +1: the checkpoint is on the left
    z = gap[prompt, column] / max(spec.temperature, 1e-9) + spec.position_bias * side
    score = (rng.random(len(prompt)) < _sigmoid(z)).astype(float)
    if spec.tie_margin > 0:
        score[np.abs(_sigmoid(z) - 0.5) < spec.tie_margin] = 0.5
    noise_free = 0.5 * (_sigmoid(gap / spec.temperature + spec.position_bias)
                        + _sigmoid(gap / spec.temperature - spec.position_bias))  # fmt: skip
    return Study(prompt, column, score, diff[prompt, column], noise_free)


def run_seeds(lab: RealLab, spec: RaterSpec, raters: int, seeds: int, n_boot: int,
              allocation: AllocationRule | None = None) -> list[Outcome]:  # fmt: skip
    """Every rule on `seeds` worlds drawn from the real prompts; regret against the gold win
    rate on all the prompts (the population). With `allocation`, also adaptive allocation
    replayed on each world's verdicts (`bench.decision_bench.adaptive_outcomes`)."""
    gold = gold_win_rates(lab.gap, spec)
    prompts = int(lab.gap.shape[0])
    out = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        world = lab.drawn(rng.integers(0, prompts, prompts))
        study = simulate_study(world, spec, raters, rng)
        verdicts = len(study.score)
        for name, (pick, stated) in rule_picks(world, study, n_boot, seed).items():
            out.append(outcome(seed, gold, "real", "full", name, pick, stated, verdicts))
        if allocation is not None:
            where = (gold, "real", "full")
            out += adaptive_outcomes(seed, world, where, study, prompts, raters, PRODUCT,
                                     allocation)  # fmt: skip
    return out


def save_lab(lab: RealLab, path: Path) -> None:
    """The lab's arrays in one .npz, so later runs skip the database and the gold scoring."""
    np.savez_compressed(
        path, labels=np.array(lab.labels), run=np.array(lab.run), step=lab.step, gap=lab.gap,
        length_diff=lab.length_diff, proxy=lab.proxy_by_prompt, kl=lab.kl_by_prompt,
        tokens=lab.tokens_by_prompt, flags=np.array(["\t".join(f) for f in lab.flag_sets]),
    )  # fmt: skip


def load_lab(path: Path) -> RealLab:
    z = np.load(path)
    flags = tuple(tuple(f for f in str(x).split("\t") if f) for x in z["flags"])
    return RealLab(tuple(map(str, z["labels"])), tuple(map(str, z["run"])), z["step"], z["gap"],
                   z["length_diff"], z["proxy"], z["kl"], z["tokens"], flags)  # fmt: skip


def summary_rows(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    by_rule: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_rule[o.rule].append(o)
    rows = []
    for rule, os_ in by_rule.items():
        regret, regret_ci = mean_ci([o.regret for o in os_])
        shares = [o.share for o in os_ if o.share is not None]
        share, share_ci = mean_ci(shares) if shares else (float("nan"), float("nan"))
        within, within_ci = mean_ci([float(o.within) for o in os_])
        verdicts = [o.verdicts for o in os_ if o.verdicts is not None]
        rows.append({"rule": rule, "seeds": len(os_), "regret": regret, "regret_ci": regret_ci,
                     "verdicts": float(np.mean(verdicts)) if verdicts else float("nan"),
                     "share": share, "share_ci": share_ci, "within": within,
                     "within_ci": within_ci, "failures": sum(o.failed for o in os_)})  # fmt: skip
    return rows


# ---- loading real checkpoints ------------------------------------------------------------------


def load(
    database_url: str | None, runs: list[str], prompt_set: str, reference_run: str | None = None
) -> RealLab:
    """Per-prompt arrays of the runs' evaluated checkpoints against their base, or against the
    base of `reference_run` (a best-of-n ladder's own base is its sample 0, which BoN(n) chose
    from: an independent base sample is the fair reference)."""
    from sqlalchemy import select

    from judging.data.db import make_engine, make_session_factory
    from judging.data.models import (
        Checkpoint,
        Evaluation,
        Generation,
        Prompt,
        PromptSet,
        TrainingRun,
    )
    from judging.settings import get_settings
    from training.gold import GoldScorer

    engine = make_engine(database_url or get_settings().resolved_database_url)
    with make_session_factory(engine)() as session:
        pset = session.scalar(select(PromptSet).where(PromptSet.name == prompt_set))
        if pset is None:
            raise SystemExit(f"prompt set {prompt_set!r} not found")
        prompts = {p.id: p.text for p in session.scalars(
            select(Prompt).where(Prompt.prompt_set_id == pset.id))}  # fmt: skip
        rows = session.execute(
            select(Checkpoint, TrainingRun.name)
            .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
            .where(TrainingRun.name.in_([*runs, *([reference_run] if reference_run else [])]))
            .order_by(TrainingRun.name, Checkpoint.step)
        ).all()
        flags = {
            ev.checkpoint_id: tuple(ev.flags or ())
            for ev in session.scalars(select(Evaluation).where(
                Evaluation.prompt_set_id == pset.id, Evaluation.status == "done"))
        }  # fmt: skip
        base_runs = [reference_run] if reference_run else runs
        base = next(
            (c for c, n in rows if n in base_runs and (c.kind == "base" or c.step == 0)), None
        )
        if base is None:
            raise SystemExit(f"no base checkpoint in runs {base_runs}")
        cands = [
            (c, name)
            for c, name in rows
            if name in runs
            and c.id != base.id
            and c.id in flags
            and not (reference_run and (c.kind == "base" or c.step == 0))
        ]
        ids = [base.id, *[c.id for c, _ in cands]]
        gens: dict[int, dict[int, Generation]] = {i: {} for i in ids}
        for g in session.scalars(select(Generation).where(
                Generation.checkpoint_id.in_(ids), Generation.prompt_id.in_(list(prompts)),
                Generation.replicate == 0)):  # fmt: skip
            gens[g.checkpoint_id][g.prompt_id] = g
        labels = tuple(f"{name}@{c.step}" for c, name in cands)
        run_names = tuple(name for _, name in cands)
        steps = np.array([c.step for c, _ in cands], dtype=np.int64)
        flag_sets = tuple(flags[c.id] for c, _ in cands)
    engine.dispose()
    common = sorted(set(prompts).intersection(*(set(per) for per in gens.values())))
    if not cands or not common:
        raise SystemExit("no evaluated checkpoint with generations on every prompt: evaluate first")

    def matrix(value: Any) -> Array:
        return np.array([[value(gens[c][p]) for c in ids[1:]] for p in common], dtype=float)

    scorer = GoldScorer()
    gold = {
        c: np.array([s.total for s in scorer.scores(
            [prompts[p] for p in common], [gens[c][p].text for p in common])])
        for c in ids
    }  # fmt: skip
    gap = np.column_stack([gold[c] - gold[base.id] for c in ids[1:]])
    base_len = np.array([len(gens[base.id][p].text) for p in common], dtype=float)
    length_diff = matrix(lambda g: len(g.text)) - base_len[:, None]
    proxy = matrix(lambda g: np.nan if g.reward_score is None else g.reward_score)
    kl = matrix(lambda g: np.nan if g.kl_k1 is None else g.kl_k1)
    tokens = matrix(lambda g: g.token_count)
    return RealLab(labels, run_names, steps, gap, length_diff, proxy, kl, tokens, flag_sets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--runs", default="demo-ppo-kl001,demo-ppo-kl01")
    parser.add_argument("--prompt-set", default="heldout-200")
    parser.add_argument("--reference-run", default=None, help="whose base is the reference")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--raters", type=int, default=2, help="verdicts per prompt and checkpoint")
    parser.add_argument("--temperature", type=float, default=0.08)
    parser.add_argument("--position-bias", type=float, default=0.2)
    parser.add_argument("--n-boot", type=int, default=PRODUCT.n_boot)
    parser.add_argument("--lab", type=Path, default=None,
                        help="a .npz of the checkpoints' per-prompt numbers: read it if "
                        "it exists (no database, no gold scoring), else write it")  # fmt: skip
    parser.add_argument("--adaptive", action="store_true",
                        help="also replay adaptive allocation on every world")  # fmt: skip
    parser.add_argument("--burn-in", type=int, default=AllocationRule().burn_in)
    parser.add_argument("--looks", default=None, help="e.g. 30,40,50 (default: the product's)")
    parser.add_argument("--keep", type=float, default=AllocationRule().keep)
    parser.add_argument("--target", type=float, default=AllocationRule().target)
    args = parser.parse_args()
    spec = RaterSpec(temperature=args.temperature, position_bias=args.position_bias)
    if args.lab is not None and args.lab.exists():
        lab = load_lab(args.lab)
    else:
        lab = load(args.database_url, args.runs.split(","), args.prompt_set, args.reference_run)
        if args.lab is not None:
            save_lab(lab, args.lab)
    looks = tuple(int(x) for x in args.looks.split(",")) if args.looks else AllocationRule().looks
    allocation = (
        AllocationRule(burn_in=args.burn_in, looks=looks, keep=args.keep, target=args.target)
        if args.adaptive
        else None
    )
    gold = gold_win_rates(lab.gap, spec)
    reference = f"base of {args.reference_run}" if args.reference_run else "base"
    print(f"{lab.gap.shape[0]} prompts, reference = {reference}; rater "
          f"T={spec.temperature}, position bias={spec.position_bias}, {args.raters} verdicts "
          f"per pair, {args.seeds} worlds\n")  # fmt: skip
    print("| checkpoint | proxy | KL (nats) | tokens | gold WR (all prompts) | flags |")
    print("|---|---|---|---|---|---|")
    for k in range(lab.n):
        print(f"| {lab.labels[k]} | {lab.proxy[k]:.3f} | {lab.kl[k]:.2f} | {lab.tokens[k]:.0f} | "
              f"{gold[k]:.3f} | {', '.join(lab.flag_sets[k])} |")  # fmt: skip
    outcomes = run_seeds(lab, spec, args.raters, args.seeds, args.n_boot, allocation)
    print("\n| rule | verdicts | regret (win-rate points) | regret (share of gold range) | "
          "P(within delta) | failures |\n|---|---|---|---|---|---|")  # fmt: skip
    for r in summary_rows(outcomes):
        print(f"| {r['rule']} | {r['verdicts']:.0f} | {r['regret']:.4f} ± {r['regret_ci']:.4f} | "
              f"{r['share']:.3f} ± {r['share_ci']:.3f} | {r['within']:.2f} ± "
              f"{r['within_ci']:.2f} | {r['failures']} |")  # fmt: skip
    for rule in ("product", "product, exchangeable prior", "product, no prior (raw resamples)"):
        print_calibration(f"P(within delta) stated by {rule}", calibration(outcomes, rule))
    if allocation is not None:
        print_calibration("P(within delta) stated when the adaptive study stopped",
                          calibration(outcomes, ADAPTIVE))  # fmt: skip


if __name__ == "__main__":
    main()
