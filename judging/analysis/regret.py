"""Selection regret in the ground-truth simulation: pure functions over plain data.

A checkpoint's *gold win rate* is the probability that a simulated rater prefers it to the
reference, averaged over prompts and over the two sides (the position bias cancels only on
average): 0.5 * (sigma(gap / T + b) + sigma(gap / T - b)), gap = gold(checkpoint) - gold(ref).
A selection rule's *regret* is the gold gap between the best checkpoint and its pick, as a share
of the gold range across checkpoints (0 = picked the best, 1 = picked the worst).
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from judging.gold import RaterSpec, rater_choice
from judging.stats.winrate import Vote

K = TypeVar("K", bound=Hashable)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))


def gold_win_probability(gap: float, spec: RaterSpec) -> float:
    """P(a simulated rater prefers the checkpoint), its side drawn at random."""
    z = gap / max(spec.temperature, 1e-9)
    return 0.5 * (_sigmoid(z + spec.position_bias) + _sigmoid(z - spec.position_bias))


def gold_win_rate(gaps: Sequence[float], spec: RaterSpec) -> float:
    return sum(gold_win_probability(g, spec) for g in gaps) / len(gaps)


def gold_preference_votes(pairs: Iterable[tuple[Hashable, float, float]]) -> list[Vote]:
    """One noise-free gold verdict per compared pair (prompt, gold of checkpoint, gold of
    reference): 1 when the gold scorer prefers the checkpoint, 0 when it prefers the reference,
    0.5 on an exact tie. Their prompt-clustered win rate is the study's *gold curve*."""
    return [
        Vote(prompt, 1.0 if cand > ref else 0.0 if cand < ref else 0.5)
        for prompt, cand, ref in pairs
    ]


def simulate_votes(
    gaps: Mapping[Hashable, float], spec: RaterSpec, raters: int, rng: random.Random
) -> list[Vote]:
    """`raters` simulated verdicts per prompt, each with its own random side."""
    votes = []
    for prompt, gap in gaps.items():
        for _ in range(raters):
            side = "left" if rng.random() < 0.5 else "right"
            left, right = (gap, 0.0) if side == "left" else (0.0, gap)
            choice = rater_choice(left, right, spec, rng)
            score = 0.5 if choice == "tie" else float(choice == side)
            votes.append(Vote(prompt, score))
    return votes


def argmax(values: Mapping[K, float | None]) -> K:
    """The key of the largest value (None ignored); ties go to the first key."""
    best = max((v for v in values.values() if v is not None), default=None)
    if best is None:
        raise ValueError("no values to choose from")
    return next(k for k, v in values.items() if v == best)


def regret(pick: K, gold: Mapping[K, float]) -> float:
    """(best gold - gold of the pick) / (gold range); 0 when every checkpoint is equal."""
    spread = max(gold.values()) - min(gold.values())
    return (max(gold.values()) - gold[pick]) / spread if spread > 0 else 0.0


@dataclass(frozen=True)
class RuleSummary:
    rule: str
    mean_regret: float
    best_share: float
    """How often the rule picked the gold-best checkpoint."""


def summarise(picks: Mapping[str, Sequence[K]], gold: Mapping[K, float]) -> list[RuleSummary]:
    best = argmax(gold)
    return [
        RuleSummary(
            rule,
            sum(regret(p, gold) for p in ps) / len(ps),
            sum(p == best for p in ps) / len(ps),
        )
        for rule, ps in picks.items()
    ]
