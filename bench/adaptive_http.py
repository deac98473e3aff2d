"""Adaptive against uniform allocation on real checkpoints, through the real HTTP API.

For each seed, two studies over the same checkpoints, prompts and reference (a best-of-n ladder
by default): one uniform (every comparison judged by 2 raters), one adaptive (stops once
P(leader within delta of the best) reaches the target). Simulated raters (the gold preference,
Bradley-Terry noise, position bias) judge each through a live `rlhf serve` (started here on a
free port, against the same database), exactly as people would: log in by invite link, read the
rating page, post the form. Then each study's recommendation is computed as the product does.

Printed per seed and allocation: verdicts used, the pick (checkpoint step), its stated
P(within delta), and its regret = gold win rate of the gold-best checkpoint minus that of the
pick, both from the noise-free gold verdicts on every prompt (the uniform study's gold curve).
Then the mean saving in verdicts and the regret of each allocation with 95% intervals.

    DATABASE_URL=... python bench/adaptive_http.py --run bon-smollm2 \
        --reference-run smollm2-base-ref --seeds 5
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.decision_bench import mean_ci
from tests.live_app import LiveApp


def checkpoints(session: Any, run: str, reference_run: str) -> tuple[list[int], int, int]:
    """Non-base checkpoints of `run`, the base of `reference_run`, and the prompt set id."""
    from sqlalchemy import select

    from judging.data.models import Checkpoint, PromptSet, TrainingRun

    def of(name: str) -> list[Checkpoint]:
        found = session.scalar(select(TrainingRun).where(TrainingRun.name == name))
        if found is None:
            raise SystemExit(f"no run {name!r}")
        return list(
            session.scalars(
                select(Checkpoint).where(Checkpoint.run_id == found.id).order_by(Checkpoint.step)
            )
        )

    cands = [c.id for c in of(run) if c.kind != "base" and c.step != 0]
    reference = next(c.id for c in of(reference_run) if c.kind == "base" or c.step == 0)
    pset = session.scalar(select(PromptSet).where(PromptSet.split == "heldout"))
    return cands, reference, pset.id


def one_study(
    factory: Any,
    url: str,
    *,
    allocation: str,
    seed: int,
    cands: list[int],
    reference: int,
    prompt_set: int,
    raters: int,
    base_reuse: int,
    target: float,
) -> dict[str, Any]:
    from cli.simulate import gold_scored_study
    from judging.analysis.recommendation import refresh_recommendation
    from judging.gold import RaterSpec
    from judging.studies.allocation import describe, live_verdicts
    from judging.studies.lookups import get_study
    from judging.studies.raters import invite_rater
    from judging.studies.service import create_study
    from judging.studies.simulated import run_raters

    name = f"http-{allocation}-s{seed}-{time.time_ns()}"
    with factory() as session:
        tokens: dict[str, str] = {}
        ids: list[int] = []
        for index in range(1, raters + 1):  # "sim-" names: the simulated raters' convention
            rater, token = invite_rater(session, name=f"sim-{name}-{index:02d}")
            tokens[rater.name] = token
            ids.append(rater.id)
        study = create_study(
            session,
            name=name,
            checkpoint_ids=cands,
            prompt_set_id=prompt_set,
            rater_ids=ids,
            reference_checkpoint_id=reference,
            seed=seed,
            base_reuse=base_reuse,
            allocation=allocation,
            allocation_target=target,
        )
        session.commit()
        study_id = study.id
    score = gold_scored_study(study_id)
    started = time.monotonic()
    run_raters(url, tokens, score, RaterSpec(), seed=seed)
    seconds = time.monotonic() - started
    with factory() as session:
        study = get_study(session, study_id)
        view = describe(session, study)
        refreshed = refresh_recommendation(session, study_id, force=True)
        session.commit()
        stored = refreshed.stored
        return {
            "study": study_id,
            "allocation": allocation,
            "seed": seed,
            "verdicts": live_verdicts(session, study_id),
            "decided_after": view.decided_after if view else None,
            "pick": stored.checkpoint_id if stored else None,
            "p_within": stored.evidence.get("p_within_delta") if stored else None,
            "seconds": seconds,
        }


def gold_truths(factory: Any, study_id: int) -> dict[str, dict[int, float]]:
    """Each checkpoint's gold win rate on every prompt of a uniform study, two ways: "rater"
    is a simulated rater's expected preference (what verdicts can reveal; the decision bench's
    and selection_regret's truth), "noise-free" the gold verdict itself (the study's gold line).
    They can rank close checkpoints differently: rater noise compresses large gold gaps."""
    from judging.analysis.gold_curve import gold_pairs
    from judging.analysis.regret import gold_win_probability
    from judging.gold import RaterSpec

    spec = RaterSpec()
    with factory() as session:
        pairs = gold_pairs(session, study_id)
    return {
        "rater": {
            c: float(np.mean([gold_win_probability(g - r, spec) for _, g, r in rows]))
            for c, rows in pairs.items()
        },
        "noise-free": {
            c: float(np.mean([1.0 if g > r else 0.0 if g < r else 0.5 for _, g, r in rows]))
            for c, rows in pairs.items()
        },
    }


def stored_results(factory: Any, prefix: str) -> list[dict[str, Any]]:
    """The rows of studies this script ran before (names http-<allocation>-s<seed>-...)."""
    from sqlalchemy import select

    from judging.analysis.recommendation import latest_recommendation
    from judging.data.models import Study
    from judging.studies.allocation import describe, live_verdicts

    out = []
    with factory() as session:
        for study in session.scalars(
            select(Study).where(Study.name.like(f"{prefix}%")).order_by(Study.id)
        ):
            _, allocation, seed, _ = study.name.split("-", 3)
            rec = latest_recommendation(session, study.id)
            view = describe(session, study)
            out.append(
                {
                    "study": study.id,
                    "allocation": allocation,
                    "seed": int(seed[1:]),
                    "verdicts": live_verdicts(session, study.id),
                    "decided_after": view.decided_after if view else None,
                    "pick": rec.checkpoint_id if rec else None,
                    "p_within": rec.evidence.get("p_within_delta") if rec else None,
                    "seconds": float("nan"),
                }
            )
    return out


def report(
    results: list[dict[str, Any]], truths: dict[str, dict[int, float]], delta: float
) -> None:
    for measure, truth in truths.items():
        best = max(truth.values())
        print(f"\n### truth: {measure} gold win rate (all prompts): "
              f"{ {c: round(v, 3) for c, v in truth.items()} }, delta {delta}\n")  # fmt: skip
        print("| allocation | seed | verdicts | pick | stated P(within delta) | regret |")
        print("|---|---|---|---|---|---|")
        regrets: dict[int, float] = {}
        for r in results:
            regrets[r["study"]] = best - truth[r["pick"]] if r["pick"] is not None else best - 0.5
            p = f"{r['p_within']:.2f}" if r["p_within"] is not None else "-"
            print(f"| {r['allocation']} | {r['seed']} | {r['verdicts']} | {r['pick']} | {p} | "
                  f"{regrets[r['study']]:.4f} |")  # fmt: skip
        for name in ("uniform", "adaptive"):
            rows = [r for r in results if r["allocation"] == name]
            within = [float(regrets[r["study"]] <= delta) for r in rows]
            stated = [r["p_within"] for r in rows if r["p_within"] is not None]
            regret = formatted_ci([regrets[r["study"]] for r in rows])
            print(f"{name}: regret {regret}, within delta "
                  f"of the gold-best in {sum(within):.0f}/{len(within)} seeds, mean stated "
                  f"P {np.mean(stated):.2f}")  # fmt: skip
    uni = {r["seed"]: r for r in results if r["allocation"] == "uniform"}
    ada = {r["seed"]: r for r in results if r["allocation"] == "adaptive"}
    saving = [1 - ada[s]["verdicts"] / uni[s]["verdicts"] for s in sorted(set(uni) & set(ada))]
    print(f"\nverdicts saved by adaptive: {formatted_ci(saving)} (share of uniform's)")


def formatted_ci(values: list[float]) -> str:
    mean, half = mean_ci(values)
    return f"{mean:.4f} ± {half:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--run", default="bon-smollm2")
    parser.add_argument("--reference-run", default="smollm2-base-ref")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--raters", type=int, default=10)
    parser.add_argument("--base-reuse", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument(
        "--report", action="store_true", help="no new studies: report the stored http-* ones"
    )
    args = parser.parse_args()

    from judging.data.db import make_engine, make_session_factory
    from judging.settings import get_settings
    from judging.stats.rule import RecommendationRule

    url_db = args.database_url or get_settings().resolved_database_url
    os.environ["DATABASE_URL"] = url_db
    engine = make_engine(url_db)
    factory = make_session_factory(engine)
    with factory() as session:
        cands, reference, prompt_set = checkpoints(session, args.run, args.reference_run)
    delta = RecommendationRule().delta
    if args.report:
        stored = stored_results(factory, "http-")
        uniform = next(r["study"] for r in stored if r["allocation"] == "uniform")
        report(stored, gold_truths(factory, uniform), delta)
        engine.dispose()
        return
    scratch = tempfile.TemporaryDirectory()
    server = LiveApp(url_db, Path(scratch.name))
    server.start()
    url = server.url
    results: list[dict[str, Any]] = []
    try:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for allocation in ("uniform", "adaptive"):
                row = one_study(
                    factory,
                    url,
                    allocation=allocation,
                    seed=seed,
                    cands=cands,
                    reference=reference,
                    prompt_set=prompt_set,
                    raters=args.raters,
                    base_reuse=args.base_reuse,
                    target=args.target,
                )
                results.append(row)
                print(row, flush=True)
    finally:
        server.stop()
        scratch.cleanup()
    truths = gold_truths(factory, next(r["study"] for r in results if r["allocation"] == "uniform"))
    engine.dispose()
    report(results, truths, delta)


if __name__ == "__main__":
    main()
