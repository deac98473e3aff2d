"""The best-of-n ladder's table: does the gold rise and then fall while the proxy keeps rising?

Reads an imported ladder run (`rlhf ladder import`) and a study that judged its rungs against
an independent base sample (`rlhf simulate gold` or `simulate raters` stored the gold scores):

    DATABASE_URL=... python bench/ladder_table.py --run bon-smollm2 --study 1

One row per rung: n, KL (log n - (n-1)/n), the proxy and the evaluation RM (means with 95%
intervals from the evaluation summary), the gold score's mean, the gold win rate against the
reference with its prompt-clustered 95% interval (noise-free gold verdicts, `gold_rates`), the
response length in tokens, the truncation rate and the evaluation's flags. Then the hump: the
gold-best rung against the max-proxy rung, with the paired difference of their gold verdicts
and its interval (prompts resampled jointly).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _mean(block: Any) -> str:
    if not block:
        return "-"
    return f"{block['mean']:.3f} [{block['ci_low']:.3f}, {block['ci_high']:.3f}]"


def rows(session: Any, run_name: str, study_id: int) -> list[dict[str, Any]]:
    """One dict per judged rung of the run, in order of n."""
    from sqlalchemy import select

    from judging.analysis.gold_curve import gold_pairs, gold_rates
    from judging.data.models import Checkpoint, Evaluation, TrainingRun

    run = session.scalar(select(TrainingRun).where(TrainingRun.name == run_name))
    if run is None:
        raise SystemExit(f"no run {run_name!r}")
    rates = gold_rates(session, study_id)
    pairs = gold_pairs(session, study_id)
    out = []
    for ckpt in session.scalars(
        select(Checkpoint).where(Checkpoint.run_id == run.id).order_by(Checkpoint.step)
    ):
        if ckpt.id not in rates:
            continue
        ev = session.scalar(
            select(Evaluation)
            .where(Evaluation.checkpoint_id == ckpt.id, Evaluation.status == "done")
            .order_by(Evaluation.id.desc())
        )
        summary = ev.summary if ev is not None and ev.summary else {}
        gold = [cand for _, cand, _ in pairs[ckpt.id]]
        out.append(
            {
                "id": ckpt.id,
                "n": ckpt.step,
                "kl": float((summary.get("kl_k3") or {}).get("mean", float("nan"))),
                "proxy": summary.get("reward"),
                "eval_rm": summary.get("eval_reward"),
                "gold_mean": float(np.mean(gold)),
                "gold_wr": rates[ckpt.id],
                "votes": {p: 1.0 if c > r else 0.0 if c < r else 0.5 for p, c, r in pairs[ckpt.id]},
                "tokens": summary.get("length_tokens", float("nan")),
                "truncated": summary.get("truncation_rate", float("nan")),
                "flags": ev.flags or [] if ev is not None else [],
            }
        )
    return out


def paired_difference(
    a: dict[int, float], b: dict[int, float], n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of a - b over their common prompts, with a 95% percentile interval (prompts
    resampled jointly, so the two rungs' shared prompt difficulty cancels)."""
    prompts = sorted(set(a) & set(b))
    diff = np.array([a[p] - b[p] for p in prompts])
    rng = np.random.default_rng(seed)
    draws = diff[rng.integers(0, len(diff), size=(n_boot, len(diff)))].mean(axis=1)
    lo, hi = np.quantile(draws, [0.025, 0.975])
    return float(diff.mean()), float(lo), float(hi)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--run", default="bon-smollm2")
    parser.add_argument("--study", type=int, required=True)
    args = parser.parse_args()

    from judging.data.db import make_engine, make_session_factory
    from judging.settings import get_settings

    engine = make_engine(args.database_url or get_settings().resolved_database_url)
    with make_session_factory(engine)() as session:
        table = rows(session, args.run, args.study)
    engine.dispose()
    if not table:
        raise SystemExit(f"study {args.study} has no gold-scored rung of {args.run}")
    print("| n | KL (nats) | proxy | evaluation RM | gold mean | gold win rate [95% CI] | tokens "
          "| truncated | flags |\n|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    for r in table:
        wr = r["gold_wr"]
        print(f"| {r['n']} | {r['kl']:.3f} | {_mean(r['proxy'])} | {_mean(r['eval_rm'])} | "
              f"{r['gold_mean']:.3f} | {wr.estimate:.3f} [{wr.low:.3f}, {wr.high:.3f}] | "
              f"{r['tokens']:.1f} | {r['truncated']:.2f} | "
              f"{', '.join(r['flags']) or '-'} |")  # fmt: skip
    best = max(table, key=lambda r: r["gold_wr"].estimate)
    top = max(table, key=lambda r: (r["proxy"] or {}).get("mean", float("-inf")))
    diff, lo, hi = paired_difference(best["votes"], top["votes"])
    print(f"\ngold-best rung n={best['n']} minus max-proxy rung n={top['n']}: gold win rate "
          f"{diff:+.3f} [{lo:+.3f}, {hi:+.3f}] (paired over prompts)")  # fmt: skip


if __name__ == "__main__":
    main()
