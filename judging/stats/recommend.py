"""The best-checkpoint recommendation: a documented rule over plain evidence, and its explanation.

The default rule (`RecommendationRule()`):

1. A checkpoint is a candidate only if it has at least `min_verdicts` human verdicts against the
   reference, carries no *hard* reward-hacking flag (length blow-up, runaway truncation,
   repetition, collapsed diversity: degenerate text that a win rate on a few hundred prompts can
   miss), and, when a KL budget is set, stays within it.
2. Among candidates the one with the best **length-controlled** human win rate wins: humans, not the
   reward model PPO optimised, and not rewarded for writing more.
3. When its interval overlaps the runner-up's, the data cannot tell the two apart, so the one closer
   to the base (lower KL) is preferred: it spent less of the KL budget for an indistinguishable
   result, and over-optimisation only grows with KL (Gao et al. 2022).

Confidence is the share of joint prompt-clustered bootstrap resamples (the same prompts drawn for
every checkpoint, since they were all judged on the same held-out set) in which the choice is the
best candidate. The explanation is generated from the numbers and always compares the choice with
the highest-reward checkpoint and with the last checkpoint of its run.

Pure: no database. `judging.analysis.recommendation` loads the evidence and stores the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from judging.stats.divergence import CurvePoint, Divergence, Estimate, divergence_alarms
from judging.stats.explain import explain
from judging.stats.lc_winrate import JointDraws, LengthVote, joint_bootstrap
from judging.stats.paired import PairedTest, paired_test
from judging.stats.winrate import Interval, Vote, percentile_interval

METHOD = "lc-winrate-v1"

DEFAULT_HARD_FLAGS = ("length_growth", "truncation", "seq_rep", "distinct", "self_bleu")
"""Flag name prefixes (see `evaluation.diagnostics.raise_flags`) that exclude a checkpoint.
Refusals, sycophancy, emoji and headers are reported but do not exclude: they are style shifts
that human verdicts already price in, not degenerate text."""


@dataclass(frozen=True)
class RecommendationRule:
    """How the best checkpoint is chosen; every field is stored with each recommendation."""

    min_verdicts: int = 20
    """Fewer human verdicts than this and a checkpoint is not a candidate (its interval is wide)."""
    max_kl: float | None = None
    """KL budget (nats, held-out KL from the base per response); None: no budget. A budget is
    run-specific (it scales with response length), so none is assumed by default."""
    hard_flags: tuple[str, ...] = DEFAULT_HARD_FLAGS
    """Evaluation flags (by name prefix) that exclude a checkpoint outright."""
    metric: Literal["lc", "raw"] = "lc"
    """Rank candidates by length-controlled ("lc") or raw human win rate against the reference."""
    prefer_lower_kl_on_overlap: bool = True
    """When the best interval overlaps the runner-up's, choose the lower-KL of the two."""
    level: float = 0.95
    """Interval coverage."""
    n_boot: int = 1000
    """Joint prompt-clustered bootstrap resamples (intervals and confidence)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.min_verdicts < 0:
            raise ValueError("min_verdicts must be >= 0")
        if self.max_kl is not None and self.max_kl < 0:
            raise ValueError("max_kl must be >= 0 (or None for no budget)")
        if self.metric not in ("lc", "raw"):
            raise ValueError(f"metric must be 'lc' or 'raw', not {self.metric!r}")
        if not 0 < self.level < 1:
            raise ValueError("level must be within (0, 1)")
        if self.n_boot < 1:
            raise ValueError("n_boot must be >= 1")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CheckpointEvidence:
    """Everything the rule and its explanation use about one checkpoint (plain data)."""

    checkpoint_id: int
    label: str
    run: str
    step: int
    votes: tuple[LengthVote, ...] = ()
    reward: Estimate | None = None
    """Held-out score of the reward model PPO optimised (mean with CI)."""
    eval_reward: Estimate | None = None
    """Held-out score of an evaluation reward model PPO did not see, if there is one."""
    kl: Estimate | None = None
    """Held-out KL from the base (nats per response)."""
    length_growth: float | None = None
    repetition: float | None = None
    """Mean seq-rep-n of the responses."""
    flags: tuple[str, ...] = ()
    train_metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckpointScore:
    checkpoint_id: int
    label: str
    n_verdicts: int
    n_prompts: int
    win_rate: Interval | None
    lc_win_rate: Interval | None
    eligible: bool
    reasons: tuple[str, ...]
    """Why it is not a candidate (empty when it is)."""
    p_best: float
    """Share of resamples in which it is the best candidate (0 for non-candidates)."""

    def metric(self, rule: RecommendationRule) -> Interval | None:
        return self.lc_win_rate if rule.metric == "lc" else self.win_rate


@dataclass(frozen=True)
class Decision:
    rule: RecommendationRule
    scores: tuple[CheckpointScore, ...]
    choice: int | None
    runner_up: int | None
    overlap: bool
    """The choice's interval overlaps the runner-up's."""
    lower_kl_preferred: bool
    """The choice is the runner-up by win rate, preferred for its lower KL."""
    confidence: float | None
    highest_reward: int | None
    last: int | None
    beats: dict[int, float]
    """Share of resamples in which the choice's metric is above each other checkpoint's."""
    paired: PairedTest | None
    """Raw-vote paired test, choice minus runner-up, on their shared prompts."""
    alarms: tuple[Divergence, ...]
    explanation: tuple[str, ...] = ()

    def score(self, checkpoint_id: int | None) -> CheckpointScore | None:
        return next((s for s in self.scores if s.checkpoint_id == checkpoint_id), None)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- joint bootstrap -----------------------------------------------------------------------------


def _bootstrap(
    evidence: Sequence[CheckpointEvidence], rule: RecommendationRule
) -> JointDraws | None:
    """LC (one shared length slope) and raw win rates from the same resampled prompts."""
    return joint_bootstrap({i: e.votes for i, e in enumerate(evidence)}, rule.n_boot, rule.seed)


def _interval(
    estimate: float, draws: Sequence[float | None], e: CheckpointEvidence, level: float
) -> Interval:
    values = [d for d in draws if d is not None]
    low, high = percentile_interval(values, level) if values else (estimate, estimate)
    prompts = len({v.prompt_id for v in e.votes})
    return Interval(estimate, low, high, n_clusters=prompts, n_votes=len(e.votes))


# ---- the rule ------------------------------------------------------------------------------------


def exclusion_reasons(e: CheckpointEvidence, rule: RecommendationRule) -> tuple[str, ...]:
    reasons = []
    if len(e.votes) < rule.min_verdicts:
        reasons.append(f"only {len(e.votes)} verdicts (minimum {rule.min_verdicts})")
    reasons += [f"hard flag {f}" for f in e.flags if f.startswith(rule.hard_flags)]
    if rule.max_kl is not None:
        if e.kl is None:
            reasons.append(f"KL unknown (budget {rule.max_kl:g} nats)")
        elif e.kl.estimate > rule.max_kl:
            reasons.append(f"KL {e.kl.estimate:.2f} over the budget of {rule.max_kl:g} nats")
    return tuple(reasons)


def _metric_draws(draws: JointDraws | None, i: int, rule: RecommendationRule) -> list[float | None]:
    if draws is None:
        return []
    table = draws.lc if rule.metric == "lc" else draws.raw
    return table.get(i, [None] * rule.n_boot)


def _best_shares(
    draws: JointDraws | None, n: int, eligible: Sequence[int], rule: RecommendationRule
) -> list[float]:
    """Per checkpoint, the share of resamples in which it has the best metric among candidates."""
    wins = [0] * n
    columns = {i: _metric_draws(draws, i, rule) for i in eligible}
    n_boot = rule.n_boot if draws is not None else 0
    for b in range(n_boot):
        present = [(col[b], i) for i, col in columns.items() if col[b] is not None]
        if present:
            wins[max(present)[1]] += 1
    return [w / n_boot if n_boot else 0.0 for w in wins]


def _scores(
    evidence: Sequence[CheckpointEvidence], draws: JointDraws | None, rule: RecommendationRule
) -> list[CheckpointScore]:
    reasons = [exclusion_reasons(e, rule) for e in evidence]
    eligible = [i for i, r in enumerate(reasons) if not r]
    shares = _best_shares(draws, len(evidence), eligible, rule)
    out = []
    for i, e in enumerate(evidence):
        raw = lc = None
        if e.votes and draws is not None:
            raw_estimate = sum(v.score for v in e.votes) / len(e.votes)
            raw = _interval(raw_estimate, draws.raw[i], e, rule.level)
            lc = _interval(draws.fit.lc_win_rate(i), draws.lc[i], e, rule.level)
        n_prompts = len({v.prompt_id for v in e.votes})
        out.append(
            CheckpointScore(
                e.checkpoint_id, e.label, len(e.votes), n_prompts, raw, lc, not reasons[i],
                reasons[i], shares[i],
            )
        )  # fmt: skip
    return out


def _kl(e: CheckpointEvidence) -> float:
    return e.kl.estimate if e.kl is not None else float("inf")


def _pick(
    evidence: Sequence[CheckpointEvidence],
    scores: Sequence[CheckpointScore],
    rule: RecommendationRule,
) -> tuple[int | None, int | None, bool, bool]:
    """(choice index, runner-up index, intervals overlap, lower KL preferred)."""
    ranked = sorted(
        (i for i, s in enumerate(scores) if s.eligible and s.metric(rule) is not None),
        key=lambda i: (-scores[i].metric(rule).estimate, _kl(evidence[i])),  # type: ignore[union-attr]
    )
    if not ranked:
        return None, None, False, False
    if len(ranked) == 1:
        return ranked[0], None, False, False
    best, runner = ranked[0], ranked[1]
    b, r = scores[best].metric(rule), scores[runner].metric(rule)
    assert b is not None and r is not None
    overlap = b.low <= r.high
    if overlap and rule.prefer_lower_kl_on_overlap and _kl(evidence[runner]) < _kl(evidence[best]):
        return runner, best, True, True
    return best, runner, overlap, False


def _highest_reward(evidence: Sequence[CheckpointEvidence]) -> int | None:
    scored = [
        (e.reward.estimate, e.step, i) for i, e in enumerate(evidence) if e.reward is not None
    ]
    return max(scored)[2] if scored else None


def _last(evidence: Sequence[CheckpointEvidence], choice: int | None) -> int | None:
    if not evidence:
        return None
    run = evidence[choice].run if choice is not None else None
    same = [(e.step, i) for i, e in enumerate(evidence) if run is None or e.run == run]
    return max(same)[1]


def _beats(draws: JointDraws | None, n: int, choice: int, rule: RecommendationRule) -> list[float]:
    mine = _metric_draws(draws, choice, rule)
    out = []
    for i in range(n):
        pairs = zip(mine, _metric_draws(draws, i, rule), strict=False)
        valid = [(a, b) for a, b in pairs if a is not None and b is not None]
        out.append(sum(a > b for a, b in valid) / len(valid) if valid else 0.0)
    return out


def _alarms(
    evidence: Sequence[CheckpointEvidence], scores: Sequence[CheckpointScore]
) -> tuple[Divergence, ...]:
    alarms: list[Divergence] = []
    for run in sorted({e.run for e in evidence}):
        points = [
            CurvePoint(e.checkpoint_id, e.step, e.reward, s.win_rate)
            for e, s in zip(evidence, scores, strict=True)
            if e.run == run
        ]
        alarms += divergence_alarms(points)
    return tuple(alarms)


def recommend(
    evidence: Sequence[CheckpointEvidence], rule: RecommendationRule | None = None
) -> Decision:
    """Apply the rule to the evidence; `choice` is None when no checkpoint qualifies."""
    rule = rule or RecommendationRule()
    draws = _bootstrap(evidence, rule)
    scores = _scores(evidence, draws, rule)
    choice, runner, overlap, preferred = _pick(evidence, scores, rule)
    ids = [e.checkpoint_id for e in evidence]
    beats = _beats(draws, len(evidence), choice, rule) if choice is not None else []
    paired = None
    if choice is not None and runner is not None:
        paired = paired_test(_votes(evidence[choice]), _votes(evidence[runner]), seed=rule.seed)
    highest, last = _highest_reward(evidence), _last(evidence, choice)
    decision = Decision(
        rule=rule,
        scores=tuple(scores),
        choice=ids[choice] if choice is not None else None,
        runner_up=ids[runner] if runner is not None else None,
        overlap=overlap,
        lower_kl_preferred=preferred,
        confidence=scores[choice].p_best if choice is not None else None,
        highest_reward=ids[highest] if highest is not None else None,
        last=ids[last] if last is not None else None,
        beats={ids[i]: share for i, share in enumerate(beats) if i != choice},
        paired=paired,
        alarms=_alarms(evidence, scores),
    )
    return replace(decision, explanation=tuple(explain(decision, evidence)))


def _votes(e: CheckpointEvidence) -> list[Vote]:
    return [Vote(v.prompt_id, v.score) for v in e.votes]
