"""Selection regret: does the recommendation pick the checkpoint the gold preference likes best?

Takes the demo's checkpoints and their held-out generations straight from the database, scores
every response with the gold preference, and then, for each of `--seeds` simulated-rater seeds,
draws a study's verdicts (`--raters` per prompt and checkpoint, RaterSpec noise and position
bias) and lets four rules pick a checkpoint:

- product:  the product's rule (judging.stats.recommend with its defaults: LC win rate from the
            simulated votes and the real length differences, hard flags and KL from the stored
            evaluations, lower KL on overlapping intervals)
- proxy:    the highest mean reward-model score on the held-out prompts (no raters needed)
- last:     the final checkpoint (latest step; between runs, the one with higher proxy reward)
- raw_wr:   the highest raw simulated win rate

Regret = gold-win-rate gap to the gold-best checkpoint as a share of the gold range.

    DATABASE_URL=... python bench/selection_regret.py [--runs demo-ppo-kl001,demo-ppo-kl01]
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from judging.analysis.regret import (
    argmax,
    gold_win_rate,
    simulate_votes,
    summarise,
)
from judging.gold import RaterSpec
from judging.stats.winrate import Vote, win_rate


@dataclass(frozen=True)
class Candidate:
    id: int
    label: str
    run: str
    step: int
    proxy: float | None
    summary: dict[str, Any] | None = None


def product_rule(
    data: dict[str, Any], database_url: str | None, prompt_set: str
) -> Callable[[Mapping[int, Sequence[Vote]], int], int | None]:
    """The product's recommendation over simulated votes; None when no checkpoint qualifies."""
    from dataclasses import replace

    from sqlalchemy import select

    from judging.analysis.evidence import checkpoint_evidence
    from judging.data.db import make_engine, make_session_factory
    from judging.data.models import PromptSet
    from judging.settings import get_settings
    from judging.stats.lc_winrate import LengthVote
    from judging.stats.recommend import RecommendationRule, recommend

    engine = make_engine(database_url or get_settings().resolved_database_url)
    with make_session_factory(engine)() as session:
        pset_id = session.scalar(select(PromptSet.id).where(PromptSet.name == prompt_set))
        assert pset_id is not None
        evidence = checkpoint_evidence(session, [c.id for c in data["candidates"]], pset_id)
    engine.dispose()
    texts, base = data["texts"], data["base"]

    def pick(votes: Mapping[int, Sequence[Vote]], seed: int) -> int | None:
        with_votes = [
            replace(
                evidence[cid],
                votes=tuple(
                    LengthVote(
                        v.prompt_id,
                        v.score,
                        len(texts[cid][v.prompt_id]) - len(texts[base][v.prompt_id]),
                    )
                    for v in vs
                ),
            )
            for cid, vs in votes.items()
        ]
        return recommend(with_votes, RecommendationRule(n_boot=300, seed=seed)).choice

    return pick


def load(database_url: str | None, runs: list[str], prompt_set: str) -> dict[str, Any]:
    """Candidates, the reference, and (prompt, text) per checkpoint and prompt."""
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

    engine = make_engine(database_url or get_settings().resolved_database_url)
    with make_session_factory(engine)() as session:
        pset = session.scalar(select(PromptSet).where(PromptSet.name == prompt_set))
        if pset is None:
            raise SystemExit(f"prompt set {prompt_set!r} not found")
        prompts = {
            p.id: p.text
            for p in session.scalars(select(Prompt).where(Prompt.prompt_set_id == pset.id))
        }
        rows = session.execute(
            select(Checkpoint, TrainingRun.name)
            .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
            .where(TrainingRun.name.in_(runs))
            .order_by(TrainingRun.name, Checkpoint.step)
        ).all()
        if not rows:
            raise SystemExit(f"no checkpoints for runs {runs}")
        proxy: dict[int, Any] = {}
        summaries: dict[int, dict[str, Any]] = {}
        for ev in session.scalars(
            select(Evaluation).where(
                Evaluation.prompt_set_id == pset.id, Evaluation.status == "done"
            )
        ):
            reward = (ev.summary or {}).get("reward")
            proxy[ev.checkpoint_id] = reward.get("mean") if isinstance(reward, dict) else reward
            summaries[ev.checkpoint_id] = {**(ev.summary or {}), "flags": ev.flags or []}
        base = next(c for c, _ in rows if c.step == 0)
        candidates = [  # evaluated checkpoints only: the bench also runs while the demo evaluates
            Candidate(c.id, f"{name}@{c.step}", name, c.step, proxy[c.id], summaries[c.id])
            for c, name in rows
            if c.step > 0 and c.id in proxy
        ]
        ids = [base.id, *[c.id for c in candidates]]
        texts: dict[int, dict[int, str]] = {i: {} for i in ids}
        for g in session.scalars(
            select(Generation).where(
                Generation.checkpoint_id.in_(ids), Generation.prompt_id.in_(prompts)
            )
        ):
            texts[g.checkpoint_id][g.prompt_id] = g.text
    engine.dispose()
    common = set(prompts)
    for per in texts.values():
        common &= set(per)
    if not common:
        raise SystemExit(
            "no held-out prompt has a generation from every checkpoint: evaluate first"
        )
    return {
        "prompts": prompts,
        "base": base.id,
        "candidates": candidates,
        "texts": texts,
        "common": sorted(common),
    }


def gold_gaps(data: dict[str, Any]) -> tuple[dict[int, dict[int, float]], dict[int, float]]:
    """gold(checkpoint) - gold(reference) per prompt, and the mean gold score per checkpoint."""
    from training.gold import GoldScorer

    scorer = GoldScorer()
    prompts, texts, common = data["prompts"], data["texts"], data["common"]
    gold: dict[int, dict[int, float]] = {}
    for cid, per in texts.items():
        scores = scorer.scores([prompts[p] for p in common], [per[p] for p in common])
        gold[cid] = {p: s.total for p, s in zip(common, scores, strict=True)}
    base = gold[data["base"]]
    gaps = {c.id: {p: gold[c.id][p] - base[p] for p in common} for c in data["candidates"]}
    means = {cid: sum(v.values()) / len(v) for cid, v in gold.items()}
    return gaps, means


def _num(value: Any, digits: int = 3) -> str:
    if isinstance(value, dict):
        value = value.get("mean")
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def _summary_row(c: Candidate, mean_gold: dict[int, float], gold_wr: dict[int, float]) -> str:
    s = c.summary or {}
    cells = [
        _num(s.get("eval_reward")),
        f"{mean_gold[c.id]:.3f}",
        f"{gold_wr[c.id]:.3f}",
        _num(s.get("kl_k3")),
        _num(s.get("length_tokens"), 1),
        _num(s.get("length_growth"), 2),
        _num(s.get("truncation_rate"), 2),
        ", ".join(s.get("flags") or []),
    ]
    return " | ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--runs", default="demo-ppo-kl001,demo-ppo-kl01")
    parser.add_argument("--prompt-set", default="heldout-200")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--raters", type=int, default=2, help="verdicts per prompt and checkpoint")
    parser.add_argument("--temperature", type=float, default=0.08)
    parser.add_argument("--position-bias", type=float, default=0.2)
    args = parser.parse_args()
    spec = RaterSpec(temperature=args.temperature, position_bias=args.position_bias)

    data = load(args.database_url, args.runs.split(","), args.prompt_set)
    gaps, mean_gold = gold_gaps(data)
    cands: list[Candidate] = data["candidates"]
    label = {c.id: c.label for c in cands}
    gold_wr = {c.id: gold_win_rate(list(gaps[c.id].values()), spec) for c in cands}
    print(
        f"{len(data['common'])} prompts, reference = base; rater T={spec.temperature}, "
        f"position bias={spec.position_bias}, {args.raters} verdicts per item"
    )
    print("| checkpoint | proxy RM | eval RM | gold mean | gold WR | KL k3 | tokens | growth "
          "| truncated | flags |\n|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    print(f"| base | | | {mean_gold[data['base']]:.3f} | | | | | | |")
    for c in cands:
        print(f"| {c.label} | {_num(c.proxy)} | {_summary_row(c, mean_gold, gold_wr)} |")
    best = argmax(gold_wr)
    proxy_pick = (
        argmax({c.id: c.proxy for c in cands}) if any(c.proxy is not None for c in cands) else None
    )
    last_step = max(c.step for c in cands)
    last = max((c for c in cands if c.step == last_step), key=lambda c: c.proxy or 0.0).id
    product = product_rule(data, args.database_url, args.prompt_set)
    print(
        f"\ngold-best: {label[best]}; max proxy: {label[proxy_pick] if proxy_pick else '-'}; "
        f"last: {label[last]}"
    )
    picks: dict[str, list[int]] = {"product": [], "proxy": [], "last": [], "raw_wr": []}
    print(f"\n{'seed':>4}  {'product':<22}{'raw win rate':<22}  observed WR per checkpoint")
    for seed in range(args.seeds):
        rng = random.Random(seed)
        votes = {c.id: simulate_votes(gaps[c.id], spec, args.raters, rng) for c in cands}
        observed = {cid: win_rate(v) for cid, v in votes.items()}
        pick = product(votes, seed)
        if pick is None:  # no checkpoint qualifies (all flagged, or too few verdicts)
            print(f"{seed:>4}  product rule recommends nothing")
            continue
        raw = argmax(observed)
        picks["product"].append(pick)
        picks["raw_wr"].append(raw)
        picks["last"].append(last)
        if proxy_pick is not None:
            picks["proxy"].append(proxy_pick)
        row = " ".join(f"{observed[c.id]:.2f}" for c in cands)
        print(f"{seed:>4}  {label[pick]:<22}{label[raw]:<22}  {row}")
    print(f"\n{'rule':<10}{'mean regret':>13}{'picks best':>12}")
    for r in summarise({k: v for k, v in picks.items() if v}, gold_wr):
        print(f"{r.rule:<10}{r.mean_regret:>13.3f}{r.best_share:>12.0%}")


if __name__ == "__main__":
    main()
