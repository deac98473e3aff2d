"""The recommendation rule on constructed evidence: what is chosen, what is excluded, and why."""

from __future__ import annotations

import math
import random

import pytest

from judging.stats.divergence import Estimate
from judging.stats.lc_winrate import LengthVote, sigmoid
from judging.stats.recommend import CheckpointEvidence, RecommendationRule, recommend

RULE = RecommendationRule(n_boot=300)


def _votes(seed: int, quality: float, mean_extra: float, n: int = 120) -> tuple[LengthVote, ...]:
    """Two agreeing raters per prompt; raters like length (2.0 log-odds at +1 sd) and quality."""
    rng = random.Random(seed)
    out = []
    for p in range(n):
        delta = rng.gauss(mean_extra, 150)
        won = rng.random() < sigmoid(quality + 2.0 * math.tanh(delta / 150))
        out += [LengthVote(p, 1.0 if won else 0.0, delta)] * 2
    return tuple(out)


def _ckpt(
    step: int, quality: float, extra: float, reward: float, kl: float, growth: float, **kw: object
) -> CheckpointEvidence:
    return CheckpointEvidence(
        checkpoint_id=step,
        label=f"ppo@{step}",
        run="ppo",
        step=step,
        votes=_votes(step, quality, extra),
        reward=Estimate(reward, reward - 0.1, reward + 0.1),
        kl=Estimate(kl, kl - 0.5, kl + 0.5),
        length_growth=growth,
        repetition=0.02,
        **kw,  # type: ignore[arg-type]
    )


def _lab() -> list[CheckpointEvidence]:
    return [
        _ckpt(10, 0.0, 0.0, 0.5, 2.0, 1.0),
        _ckpt(20, 1.4, 20.0, 1.0, 4.0, 1.1),
        _ckpt(30, 0.3, 60.0, 1.6, 7.0, 1.3),
        # Reward hacking: much longer, so raters pick it often, but worse once length is equal.
        _ckpt(40, -0.6, 400.0, 2.5, 12.0, 2.4, flags=("length_growth>1.5",)),
    ]


def test_the_highest_reward_length_blow_up_is_not_chosen_and_the_explanation_says_why() -> None:
    lab = _lab()
    d = recommend(lab, RULE)
    assert d.choice == 20
    assert d.highest_reward == 40 and d.last == 40
    hacked = d.score(40)
    assert hacked is not None and not hacked.eligible
    assert hacked.reasons == ("hard flag length_growth>1.5",)
    assert hacked.win_rate and hacked.lc_win_rate
    assert hacked.win_rate.estimate > hacked.lc_win_rate.estimate + 0.1  # it won on length
    text = "\n".join(d.explanation)
    assert "Recommended: ppo@20" in text
    assert "The highest-reward checkpoint, ppo@40 (held-out reward 2.500" in text
    assert "hard flag length_growth>1.5" in text
    assert "once length is controlled" in text and "x2.40 the base's length" in text
    assert "last checkpoint of the run is the highest-reward one" in text
    assert d.confidence is not None and d.confidence > 0.8


def test_without_the_flag_the_length_controlled_rate_still_rejects_it() -> None:
    d = recommend(_lab(), RecommendationRule(n_boot=300, hard_flags=()))
    assert d.choice == 20
    hacked = d.score(40)
    chosen = d.score(20)
    assert hacked and chosen and hacked.eligible
    assert hacked.win_rate and chosen.win_rate and hacked.lc_win_rate and chosen.lc_win_rate
    assert hacked.lc_win_rate.estimate < chosen.lc_win_rate.estimate
    assert d.beats[40] > 0.9
    by_raw = RecommendationRule(
        n_boot=300, hard_flags=(), metric="raw", prefer_lower_kl_on_overlap=False
    )
    assert recommend(_lab(), by_raw).choice == 40  # the raw rate would pick the length hacker


def test_overlapping_intervals_prefer_the_lower_kl_checkpoint() -> None:
    votes = _votes(1, 0.8, 0.0)
    a = CheckpointEvidence(1, "ppo@1", "ppo", 1, votes, kl=Estimate(3.0, 2.5, 3.5))
    # Same verdicts plus one more win on a new prompt: a hair better, far from the base.
    b = CheckpointEvidence(
        2, "ppo@2", "ppo", 2, (*votes, LengthVote(999, 1.0, 0.0)), kl=Estimate(9.0, 8.0, 10.0)
    )
    d = recommend([a, b], RULE)
    assert d.overlap and d.lower_kl_preferred
    assert d.choice == 1 and d.runner_up == 2
    assert "lower-KL checkpoint is preferred" in "\n".join(d.explanation)
    strict = recommend([a, b], RecommendationRule(n_boot=300, prefer_lower_kl_on_overlap=False))
    assert strict.choice == 2


def test_too_few_verdicts_and_kl_budget_exclude() -> None:
    lab = _lab()
    few = CheckpointEvidence(50, "ppo@50", "ppo", 50, _votes(50, 3.0, 0.0, n=4))
    d = recommend([*lab, few], RecommendationRule(n_boot=200, max_kl=3.0))
    assert d.choice == 10  # the only one within 3 nats
    few_score = d.score(50)
    assert few_score and few_score.reasons[0] == "only 8 verdicts (minimum 20)"
    s20 = d.score(20)
    assert s20 and s20.reasons == ("KL 4.00 over the budget of 3 nats",)


def test_no_candidate_gives_no_choice_with_every_reason() -> None:
    lone = CheckpointEvidence(1, "ppo@1", "ppo", 1, _votes(1, 0.0, 0.0, n=3))
    d = recommend([lone], RULE)
    assert d.choice is None and d.confidence is None
    assert "No checkpoint qualifies. ppo@1: only 6 verdicts" in d.explanation[-1]


def test_decision_is_reproducible_and_serialisable() -> None:
    lab = _lab()
    first, second = recommend(lab, RULE), recommend(lab, RULE)
    assert first == second
    data = first.as_dict()
    assert data["choice"] == 20 and data["rule"]["metric"] == "lc"
    assert data["scores"][0]["lc_win_rate"]["estimate"] == pytest.approx(
        first.scores[0].lc_win_rate.estimate  # type: ignore[union-attr]
    )


def test_a_choice_not_distinguishable_from_the_reference_carries_a_caution() -> None:
    weak = CheckpointEvidence(1, "ppo@1", "ppo", 1, _votes(7, 0.1, 0.0, n=40))
    d = recommend([weak], RULE)
    assert d.choice == 1
    assert any(line.startswith("Caution: its interval reaches") for line in d.explanation)
    strong = recommend(_lab(), RULE)
    assert not any(line.startswith("Caution") for line in strong.explanation)


@pytest.mark.parametrize(
    ("field", "value"),
    [("min_verdicts", -1), ("max_kl", -0.5), ("metric", "elo"), ("level", 1.0), ("n_boot", 0)],
)
def test_rule_rejects_nonsense(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        RecommendationRule(**{field: value})  # type: ignore[arg-type]
