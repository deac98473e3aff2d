"""The recommendation rule on constructed evidence: what is chosen, what is excluded, how sure.

Several tests pin a fault of the earlier rule (an overlap-triggered lower-KL tie-break, verdict
counts for eligibility, no KL guard, "confidence" as a share of top spots, intervals collapsing
to a point); each fails against that rule."""

from __future__ import annotations

import math
import random

import pytest

from judging.analysis.explain import explain
from judging.stats.divergence import Estimate
from judging.stats.lc_winrate import LengthVote
from judging.stats.recommend import recommend
from judging.stats.rule import CheckpointEvidence, Decision, RecommendationRule

RULE = RecommendationRule(n_boot=400)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _study(
    qualities: dict[int, float], extra: dict[int, float] | None = None, prompts: int = 200,
    seed: int = 0, length_bias: float = 2.0,
) -> dict[int, tuple[LengthVote, ...]]:  # fmt: skip
    """Two raters per (prompt, checkpoint); a prompt effect shared by every checkpoint (so their
    estimates move together), raters who like length (log-odds 2 at +1 sd)."""
    rng = random.Random(seed)
    extra = extra or {}
    votes: dict[int, list[LengthVote]] = {k: [] for k in qualities}
    for p in range(prompts):
        shared = rng.gauss(0, 1.0)
        for k, q in qualities.items():
            delta = rng.gauss(extra.get(k, 0.0), 150)
            item = q + shared + rng.gauss(0, 1.5) + length_bias * math.tanh(delta / 150)
            for _ in range(2):
                votes[k].append(LengthVote(p, float(rng.random() < _sigmoid(item)), delta))
    return {k: tuple(v) for k, v in votes.items()}


def _ckpt(k: int, votes: tuple[LengthVote, ...], reward: float, kl: float, tokens: float = 100.0,
          growth: float = 1.0, **kw: object) -> CheckpointEvidence:  # fmt: skip
    return CheckpointEvidence(
        checkpoint_id=k, label=f"ppo@{k}", run="ppo", step=k, votes=votes,
        reward=Estimate(reward, reward - 0.1, reward + 0.1), kl=Estimate(kl, kl - 0.5, kl + 0.5),
        length_tokens=tokens, length_growth=growth, repetition=0.02, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def _lab() -> list[CheckpointEvidence]:
    votes = _study({10: 0.0, 20: 1.0, 30: 0.3, 40: -0.6}, extra={20: 20.0, 30: 60.0, 40: 400.0})
    return [
        _ckpt(10, votes[10], 0.5, 2.0),
        _ckpt(20, votes[20], 1.0, 4.0, growth=1.1),
        _ckpt(30, votes[30], 1.6, 7.0, growth=1.3),
        # Reward hacking: much longer, so raters pick it often, but worse at equal length.
        _ckpt(40, votes[40], 2.5, 12.0, growth=2.4, flags=("length_growth>1.5",)),
    ]


def _text(d: Decision, evidence: list[CheckpointEvidence]) -> str:
    return "\n".join(explain(d, evidence))


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
    text = _text(d, lab)
    assert "Recommended: ppo@20" in text
    assert "The highest-reward checkpoint, ppo@40 (held-out reward 2.500" in text
    assert "hard flag length_growth>1.5" in text
    assert "once length is controlled" in text and "x2.40 the base's length" in text
    assert "last checkpoint of the run is the highest-reward one" in text
    assert d.p_within_delta is not None and d.p_within_delta > 0.8


def test_without_the_flag_the_length_controlled_rate_still_rejects_it() -> None:
    d = recommend(_lab(), RecommendationRule(n_boot=400, hard_flags=()))
    assert d.choice == 20
    hacked, chosen = d.score(40), d.score(20)
    assert hacked and chosen and hacked.eligible
    assert hacked.lc_win_rate and chosen.lc_win_rate and hacked.win_rate and chosen.win_rate
    assert hacked.lc_win_rate.estimate < chosen.lc_win_rate.estimate
    assert hacked.win_rate.estimate > chosen.win_rate.estimate  # raw would pick the hacker
    assert d.beats[40] > 0.9


def test_a_clearly_better_checkpoint_is_not_overruled_for_a_lower_kl() -> None:
    """Shared prompts make two checkpoints' estimates move together: their separate intervals
    overlap while the paired difference is clear. The earlier rule called that a tie and took
    the lower-KL one."""
    votes = _study({1: 0.3, 2: 0.75}, length_bias=0.0, seed=4)
    a = _ckpt(1, votes[1], 0.5, 2.0)
    b = _ckpt(2, votes[2], 1.0, 9.0)
    d = recommend([a, b], RULE)
    sa, sb = d.score(1), d.score(2)
    assert sa and sb and sa.lc_win_rate and sb.lc_win_rate
    assert sa.lc_win_rate.high >= sb.lc_win_rate.low  # the separate intervals overlap
    assert d.choice == 2 and not d.lower_kl_preferred
    diff = d.runner_up_difference
    assert diff is not None and diff.low > 0  # the paired difference is clear


def test_a_sparse_clean_sweep_is_not_recommended_over_hundreds_of_verdicts() -> None:
    """20 wins on 10 prompts: the earlier rule gave LC 1.000 [1.000, 1.000] and picked it."""
    votes = _study({1: 0.4, 2: 0.6, 3: 0.5}, length_bias=0.0, seed=2)
    lab = [_ckpt(k, v, 1.0, 3.0) for k, v in votes.items()]
    sweep = tuple(LengthVote(p, 1.0, 0.0) for p in range(10) for _ in range(2))
    lab.append(_ckpt(9, sweep, 1.0, 1.0))
    d = recommend(lab, RULE)
    assert d.choice == 2
    swept = d.score(9)
    assert swept is not None and not swept.eligible and swept.low_coverage
    assert swept.reasons[0] == "judged on 10 prompts (minimum 20)"
    assert swept.lc_win_rate is not None
    assert swept.lc_win_rate.estimate < 0.85  # pulled towards 1/2 by the virtual ties
    assert swept.lc_win_rate.high - swept.lc_win_rate.low > 0.1  # never shown as certain
    loose = recommend(lab, RecommendationRule(n_boot=400, min_prompts=0, max_interval_width=None))
    lone = loose.score(9)
    assert lone is not None and lone.eligible
    assert loose.p_within_delta is not None and loose.p_within_delta < 0.99


def test_a_kl_blow_up_is_excluded_by_default_per_token() -> None:
    """60 nats over 128 tokens (0.47 per token) with the best LC: the earlier default had no
    KL guard and recommended it."""
    votes = _study({1: 0.3, 2: 0.9}, length_bias=0.0, seed=6)
    normal = _ckpt(1, votes[1], 1.0, 6.0, tokens=128)
    blown = _ckpt(2, votes[2], 3.0, 60.0, tokens=128)
    d = recommend([normal, blown], RULE)
    assert d.choice == 1
    s = d.score(2)
    assert s is not None and s.reasons == ("KL 0.469 nats per token over the guard of 0.25",)
    # Per token, so a long-response run is not penalised for its length: 60 nats over 600
    # tokens is 0.1 per token.
    long_run = _ckpt(2, votes[2], 3.0, 60.0, tokens=600)
    assert recommend([normal, long_run], RULE).choice == 2


def test_the_stated_probability_is_about_delta_not_the_top_spot() -> None:
    """Two checkpoints that are truly equal: the earlier "confidence" (share of resamples with
    the top estimate) read about 0.5; P(within delta) knows they are interchangeable."""
    votes = _study({1: 0.5, 2: 0.5}, length_bias=0.0, seed=8)
    d = recommend([_ckpt(1, votes[1], 1.0, 2.0), _ckpt(2, votes[2], 1.0, 3.0)], RULE)
    chosen = d.score(d.choice)
    assert d.p_within_delta is not None and d.p_within_delta > 0.9
    assert chosen is not None and chosen.p_best < d.p_within_delta - 0.1
    assert d.expected_regret is not None and 0 <= d.expected_regret < 0.02


def test_the_runner_up_difference_is_on_the_ranking_metric_and_simultaneous() -> None:
    lab = _lab()
    d = recommend(lab, RecommendationRule(n_boot=400, hard_flags=()))
    diff = d.runner_up_difference
    chosen, runner = d.score(d.choice), d.score(d.runner_up)
    assert diff is not None and chosen and runner and chosen.lc_win_rate and runner.lc_win_rate
    assert diff.difference == pytest.approx(
        chosen.lc_win_rate.estimate - runner.lc_win_rate.estimate
    )
    assert diff.n_compared == 3 and diff.n_shared_prompts == 200
    assert diff.low < diff.difference < diff.high


def test_the_kl_preference_within_delta_is_an_option() -> None:
    votes = _study({1: 0.6, 2: 0.62}, length_bias=0.0, seed=9)
    lab = [_ckpt(1, votes[1], 1.0, 2.0), _ckpt(2, votes[2], 1.0, 9.0)]
    default = recommend(lab, RULE)
    gentle = recommend(lab, RecommendationRule(n_boot=400, prefer_lower_kl_within_delta=True))
    assert gentle.choice == 1
    if default.choice == 2:
        assert gentle.lower_kl_preferred and "closer to the base" in _text(gentle, lab)


def test_no_candidate_gives_no_choice_with_every_reason() -> None:
    lone = _ckpt(1, tuple(LengthVote(p, 1.0, 0.0) for p in range(3)), 1.0, 1.0)
    d = recommend([lone], RULE)
    assert d.choice is None and d.p_within_delta is None
    assert d.problem == "every checkpoint is excluded by the rule"
    assert "ppo@1: judged on 3 prompts (minimum 20)" in _text(d, [lone])


def test_an_empty_study_and_a_study_without_votes_say_so() -> None:
    assert recommend([], RULE).problem == "the study has no checkpoints"
    unjudged = recommend([_ckpt(1, (), 1.0, 1.0)], RULE)
    assert unjudged.choice is None and unjudged.problem == "no checkpoint has verdicts yet"
    assert "no verdicts" in _text(unjudged, [_ckpt(1, (), 1.0, 1.0)])


def test_every_checkpoint_flagged_gives_no_choice() -> None:
    lab = [
        CheckpointEvidence(e.checkpoint_id, e.label, e.run, e.step, e.votes, flags=("seq_rep>0.3",))
        for e in _lab()
    ]
    d = recommend(lab, RULE)
    assert d.choice is None and d.problem == "every checkpoint is excluded by the rule"


def test_decision_is_reproducible_and_serialisable() -> None:
    lab = _lab()
    first, second = recommend(lab, RULE), recommend(lab, RULE)
    assert first == second
    data = first.as_dict()
    assert data["choice"] == 20 and data["rule"]["metric"] == "lc"
    assert data["p_within_delta"] == first.p_within_delta
    assert "explanation" not in data  # the rule carries no text


def test_a_choice_not_distinguishable_from_the_reference_carries_a_caution() -> None:
    votes = _study({1: 0.05}, prompts=40, length_bias=0.0, seed=7)
    weak = [_ckpt(1, votes[1], 1.0, 1.0)]
    d = recommend(weak, RecommendationRule(n_boot=400, max_interval_width=None))
    assert d.choice == 1
    assert "Caution: its interval reaches" in _text(d, weak)
    assert "Caution" not in _text(recommend(_lab(), RULE), _lab())


@pytest.mark.parametrize(
    ("field", "value"),
    [("min_prompts", -1), ("max_kl", -0.5), ("metric", "elo"), ("level", 1.0), ("n_boot", 0),
     ("delta", -0.01), ("max_kl_per_token", -1.0), ("max_interval_width", 0.0), ("prior", "x")],
)  # fmt: skip
def test_rule_rejects_nonsense(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        RecommendationRule(**{field: value})  # type: ignore[arg-type]
