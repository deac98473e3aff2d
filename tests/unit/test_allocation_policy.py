"""The adaptive stopping rule (judging.stats.allocation) does not decide against checkpoints the
rule cannot yet compare: one left out only for want of evidence keeps the study undecided."""

from __future__ import annotations

import random

from judging.stats.allocation import AllocationRule, allocation_state, at_last_look
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


def _votes(k: int, wins: list[float], per_prompt: int, seed: int) -> CheckpointEvidence:
    """Checkpoint k judged `per_prompt` times on prompts 0..len(wins)-1, prompt p won with
    probability wins[p]."""
    rng = random.Random(seed)
    votes = tuple(
        LengthVote(p, float(rng.random() < w), 0.0)
        for p, w in enumerate(wins)
        for _ in range(per_prompt)
    )
    return CheckpointEvidence(k, f"run@{k}", "run", k, votes=votes)


def test_the_state_changes_only_at_the_looks() -> None:
    """Two checkpoints level on the first 30 prompts of the fixed order (each wins every other
    prompt), then one wins every verdict on the next 9: read whole (39 prompts) the rule is
    sure of the leader, but the last look reached is 30, where they are level, so the study is
    not decided before prompt 40."""
    rule, allocation = RecommendationRule(), AllocationRule()
    evidence = [
        _votes(1, [1.0, 0.0] * 15 + [1.0] * 9, 2, seed=1),
        _votes(2, [0.0, 1.0] * 15 + [0.0] * 9, 2, seed=2),
    ]
    order = {p: p for p in range(39)}
    assert allocation_state(evidence, rule, allocation).decided  # whole: decided on noise
    looked = at_last_look(evidence, order, {1, 2}, (), allocation)
    assert {v.prompt_id for e in looked for v in e.votes} == set(range(30))
    assert not allocation_state(looked, rule, allocation).decided


def test_before_the_first_look_the_evidence_is_whole() -> None:
    evidence = [_votes(1, [0.9] * 12, 1, seed=1), _votes(2, [0.1] * 12, 1, seed=2)]
    looked = at_last_look(evidence, {p: p for p in range(12)}, {1, 2}, (), AllocationRule())
    assert looked == evidence


def test_an_exhausted_checkpoint_does_not_hold_the_look_back() -> None:
    """A checkpoint with only 12 prompts to give (all judged) does not keep the others at the
    first look; its verdicts below the look count."""
    evidence = [_votes(1, [0.6] * 45, 2, seed=1), _votes(2, [0.5] * 12, 2, seed=2)]
    order = {p: p for p in range(45)}
    looked = at_last_look(evidence, order, {1, 2}, {2}, AllocationRule())
    assert [len({v.prompt_id for v in e.votes}) for e in looked] == [40, 12]
