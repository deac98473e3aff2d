"""The adaptive stopping rule (judging.stats.allocation) does not decide against checkpoints the
rule cannot yet compare: one left out only for want of evidence keeps the study undecided."""

from __future__ import annotations

import random

from judging.stats.allocation import AllocationRule, allocation_state
from judging.stats.lc_winrate import LengthVote
from judging.stats.rule import CheckpointEvidence, RecommendationRule


def _checkpoint(k: int, win: float, prompts: int, per_prompt: int, seed: int) -> CheckpointEvidence:
    rng = random.Random(seed)
    votes = tuple(
        LengthVote(p, float(rng.random() < win), 0.0)
        for p in range(prompts)
        for _ in range(per_prompt)
    )
    return CheckpointEvidence(k, f"run@{k}", "run", k, votes=votes)


def test_a_rival_with_too_wide_an_interval_keeps_the_study_undecided() -> None:
    """A clear leader on 200 prompts and a rival judged once on each of 30 (its interval wider
    than the rule's limit): the leader is the only candidate, so P(within delta) is 1 among
    candidates, yet the rival could be better. It stays in contention; no decision."""
    rule = RecommendationRule()
    leader = _checkpoint(1, 0.75, 200, 2, seed=1)
    rival = _checkpoint(2, 0.8, 30, 1, seed=2)
    state = allocation_state([leader, rival], rule, AllocationRule(burn_in=30))
    assert not state.decided
    assert 2 in state.contenders


def test_a_clear_leader_among_comparable_checkpoints_decides() -> None:
    rule = RecommendationRule()
    evidence = [
        _checkpoint(1, 0.9, 200, 2, seed=1),
        _checkpoint(2, 0.3, 200, 2, seed=2),
    ]
    state = allocation_state(evidence, rule, AllocationRule(burn_in=30))
    assert state.decided and state.leader == 1 and state.contenders == ()
