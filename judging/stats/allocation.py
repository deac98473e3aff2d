"""Adaptive allocation: which checkpoints still need human verdicts, and when a study is decided.

Successive elimination on the recommendation's own posterior (`stats.recommend.decide`): after
each batch of verdicts, a checkpoint stays *in contention* while the posterior gives it at least
`keep` probability of being within delta of the best candidate; the others stop receiving
comparisons. The study is *decided* once the leader's P(within delta of the best) reaches
`target`, and from then on no comparison is served (the remaining ones are released, not
deleted; an admin can resume for more precision).

What keeps the estimates honest (Chatbot Arena's lesson: informed sampling biases a fit that
ignores the design): the policy chooses *which checkpoints* are judged, never *which prompts*.
Every checkpoint is judged on prompts in one random order fixed in advance, and contenders are
served the same prompt, so they share prompts and paired differences stay available; an
eliminated checkpoint simply stops early, on a prefix of the order. Every checkpoint gets at
least `burn_in` prompts before it can be eliminated.

A checkpoint the rule leaves out only for want of evidence (too few prompts, an interval wider
than `max_interval_width`) is *undetermined*: it is not a candidate yet, so the candidates'
posterior says nothing about it. It stays in contention and the study is not decided while any
remains with comparisons left to serve, or a lone eligible leader would be "decided" at P = 1
against rivals that more verdicts could make eligible (and better). Checkpoints out for good
reasons (hard flags, the KL guard) never block the decision.

Pure: evidence in, a state out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from judging.stats.recommend import decide, exclusion_reasons, fit_evidence
from judging.stats.rule import CheckpointEvidence, CheckpointScore, RecommendationRule


@dataclass(frozen=True)
class AllocationRule:
    """When a checkpoint leaves contention and when the study is decided."""

    target: float = 0.9
    """Stop once P(the leader is within delta of the best) reaches this."""
    keep: float = 0.3
    """A checkpoint stays in contention while P(it is within delta of the best) >= keep. 0.3
    against 0.05: 59% fewer verdicts than uniform instead of 52% on the decision bench, as good
    as uniform at equal verdicts in every family; regret up to 0.005 above the full budget's,
    as the target allows (`bench/allocation_parity.py`, bench/README.md)."""
    burn_in: int = 30
    """Distinct prompts every checkpoint is judged on before anything is eliminated or decided."""
    looks: tuple[int, ...] = (30, 40, 50, 60, 80, 100, 120, 140, 160, 180)
    """Prompts per contender at which the contenders and the decision are recomputed (a
    group-sequential design): the evidence is read as it stood at the last look reached."""

    def __post_init__(self) -> None:
        if not 0.5 < self.target < 1:
            raise ValueError(f"target must be within (0.5, 1), not {self.target}")
        if not 0 <= self.keep < self.target:
            raise ValueError(f"keep must be within [0, target), not {self.keep}")
        if self.burn_in < 1:
            raise ValueError("burn_in must be >= 1")
        if list(self.looks) != sorted(set(self.looks)) or not self.looks:
            raise ValueError(f"looks must be increasing, not {self.looks}")


@dataclass(frozen=True)
class AllocationState:
    contenders: tuple[int, ...]
    """Checkpoint ids that should still receive comparisons (empty once decided)."""
    decided: bool
    leader: int | None
    p_within_delta: float | None
    """The leader's P(within delta of the best); None before the burn-in is done."""


def _prompts(e: CheckpointEvidence) -> int:
    return len({v.prompt_id for v in e.votes})


def at_last_look(
    evidence: Sequence[CheckpointEvidence], order: Mapping[Any, int], serving: Collection[int],
    exhausted: Collection[int], allocation: AllocationRule,
) -> list[CheckpointEvidence]:  # fmt: skip
    """The evidence as it stood at the last look reached: every checkpoint's verdicts on the
    prompts ranked below L in the study's fixed order `order` (prompt id -> rank), L the largest
    look that every checkpoint still `serving` (and not `exhausted`) has been judged on.

    Why: a posterior checked after every batch of verdicts crosses the target by chance more
    often than one checked at a few fixed points (optional stopping). Between looks the state
    therefore cannot change, and the server stops where the bench's replay of the same looks
    measured it (`bench/decision_bench.py`, `bench/selection_regret.py --adaptive`). Before the
    first look the evidence is returned whole (the burn-in keeps anything from happening)."""
    counts = [
        _prompts(e)
        for e in evidence
        if e.checkpoint_id in serving and e.checkpoint_id not in exhausted
    ]
    reached = [look for look in allocation.looks if counts and look <= min(counts)]
    if not reached:
        return list(evidence)
    cut = reached[-1]
    return [
        replace(e, votes=tuple(v for v in e.votes if order.get(v.prompt_id, cut) < cut))
        for e in evidence
    ]


def allocation_state(
    evidence: Sequence[CheckpointEvidence], rule: RecommendationRule, allocation: AllocationRule,
    exhausted: Collection[int] = (),
) -> AllocationState:  # fmt: skip
    """The contenders and whether the study is decided, from the verdicts so far. Checkpoints
    in `exhausted` have no comparison left to serve: they do not hold up the burn-in."""
    ids = tuple(e.checkpoint_id for e in evidence)
    waiting = [
        e for e in evidence if e.checkpoint_id not in exhausted and _prompts(e) < allocation.burn_in
    ]
    if not evidence or waiting:
        return AllocationState(ids, False, None, None)
    decision = decide(evidence, fit_evidence(evidence, rule), rule)
    if decision.choice is None:
        return AllocationState(ids, False, None, None)
    by_id = {e.checkpoint_id: e for e in evidence}
    undetermined = {
        s.checkpoint_id
        for s in decision.scores
        if s.checkpoint_id not in exhausted and _undetermined(by_id[s.checkpoint_id], s, rule)
    }
    p = decision.p_within_delta
    contenders = tuple(
        s.checkpoint_id
        for s in decision.scores
        if (s.eligible and s.p_within_delta >= allocation.keep) or s.checkpoint_id in undetermined
    )
    if p is not None and p >= allocation.target and not undetermined:
        return AllocationState((), True, decision.choice, p)
    return AllocationState(contenders or (decision.choice,), False, decision.choice, p)


def _undetermined(e: CheckpointEvidence, score: CheckpointScore, rule: RecommendationRule) -> bool:
    """Not a candidate only for want of evidence: without the prompt minimum and the interval
    limit the rule would have nothing against it."""
    if score.eligible:
        return False
    lenient = replace(rule, min_prompts=0, max_interval_width=None)
    return not exclusion_reasons(e, score.metric(rule), lenient)
