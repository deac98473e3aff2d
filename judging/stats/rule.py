"""The recommendation's types: the rule, the evidence it reads and the decision it returns.

Plain frozen dataclasses with no behaviour beyond validation, so that the rule (`recommend`), its
explanation (`judging.analysis.explain`), storage and exports can all depend on them without
depending on each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from judging.stats.divergence import Divergence, Estimate
from judging.stats.lc_winrate import LCModel, LengthVote
from judging.stats.winrate import Interval

METHOD = "paired-delta-v2"
"""Stored with each recommendation; a new method makes every stored one stale."""

DEFAULT_HARD_FLAGS = ("length_growth", "truncation", "seq_rep", "distinct", "self_bleu")
"""Flag name prefixes (see `evaluation.diagnostics.raise_flags`) that exclude a checkpoint.
Refusals, sycophancy, emoji and headers are reported but do not exclude: they are style shifts
that human verdicts already price in, not degenerate text."""

MIN_PROMPTS = 20
"""Below this many distinct prompts an interval is flagged as unreliable (and, by default, the
checkpoint is not a candidate): a bootstrap over fewer clusters understates its own width."""


@dataclass(frozen=True)
class RecommendationRule:
    """How the best checkpoint is chosen; every field is stored with each recommendation."""

    metric: Literal["lc", "adjusted"] = "lc"
    """Rank by the length-controlled win rate ("lc") or the same model without length terms
    ("adjusted"). Both include prompt difficulty and the virtual-tie prior; the decision bench
    (`bench/decision_bench.py`) is what chose the default."""
    delta: float = 0.03
    """Practical margin in win-rate points: checkpoints within delta of the best are as good for
    the purpose of shipping one. The decision's probability and regret are stated against it."""
    min_prompts: int = MIN_PROMPTS
    """Fewer distinct judged prompts than this and a checkpoint is not a candidate."""
    max_interval_width: float | None = 0.3
    """A checkpoint whose interval on the ranking metric is wider than this is not a candidate
    (too little evidence either way); None: no limit."""
    max_kl_per_token: float | None = 0.25
    """KL guard in nats per response token (held-out KL / mean response tokens): comparable
    across runs of different response lengths, unlike KL per response. A quarter nat on every
    token is far beyond what PPO at usual KL coefficients reaches (the demo's runs: < 0.07);
    None: no guard. Checkpoints whose KL or length is unknown are not excluded by it."""
    max_kl: float | None = None
    """Optional per-response KL budget (nats), meaningful within one run only."""
    hard_flags: tuple[str, ...] = DEFAULT_HARD_FLAGS
    """Evaluation flags (by name prefix) that exclude a checkpoint outright."""
    prior: Literal["curve", "exchangeable", "none"] = "curve"
    """What the true win rates are assumed to look like before the votes (`stats.posterior`):
    "curve", each run's smooth curve in sqrt(KL) plus deviations; "exchangeable", a common level
    per run plus deviations; "none", the raw joint resamples. It decides the ranking (posterior
    means) and every probability stated."""
    prefer_lower_kl_within_delta: bool = False
    """Among candidates whose estimate is within delta of the best, choose the lowest KL per
    token. Off by default: the decision bench measures what it costs (see docs/recommendation)."""
    model: LCModel = field(default_factory=LCModel)
    """The win-rate model's priors (virtual ties, ridges)."""
    level: float = 0.95
    """Interval coverage."""
    n_boot: int = 1000
    """Joint prompt resamples (intervals, probabilities, expected regret)."""
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.metric in ("lc", "adjusted"),
             f"metric must be 'lc' or 'adjusted', not {self.metric!r}"),
            (self.delta >= 0, f"delta must be >= 0 (win-rate points), not {self.delta}"),
            (self.prior in ("curve", "exchangeable", "none"),
             f"prior must be 'curve', 'exchangeable' or 'none', not {self.prior!r}"),
            (self.min_prompts >= 0, "min_prompts must be >= 0"),
            (self.max_interval_width is None or self.max_interval_width > 0,
             "max_interval_width must be > 0 (or None for no limit)"),
            (self.max_kl_per_token is None or self.max_kl_per_token >= 0,
             "max_kl_per_token must be >= 0 (or None for no guard)"),
            (self.max_kl is None or self.max_kl >= 0,
             "max_kl must be >= 0 (or None for no budget)"),
            (0 < self.level < 1, "level must be within (0, 1)"),
            (self.n_boot >= 1, "n_boot must be >= 1"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

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
    length_tokens: float | None = None
    """Mean held-out response length in tokens (for KL per token)."""
    length_growth: float | None = None
    repetition: float | None = None
    """Mean seq-rep-n of the responses."""
    flags: tuple[str, ...] = ()
    train_metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def kl_per_token(self) -> float | None:
        if self.kl is None or not self.length_tokens:
            return None
        return self.kl.estimate / self.length_tokens


@dataclass(frozen=True)
class CheckpointScore:
    checkpoint_id: int
    label: str
    n_verdicts: int
    n_prompts: int
    win_rate: Interval | None
    """Raw: the plain mean of the verdicts."""
    lc_win_rate: Interval | None
    adjusted_win_rate: Interval | None
    eligible: bool
    reasons: tuple[str, ...]
    """Why it is not a candidate (empty when it is)."""
    low_coverage: bool
    """Judged on fewer than `MIN_PROMPTS` prompts: its interval is not to be trusted."""
    p_best: float
    """Share of resamples in which it has the best ranking metric among candidates."""
    p_within_delta: float
    """Share of resamples in which it is within delta of the best candidate."""
    expected_regret: float | None
    """Mean over resamples of (best candidate - it) on the ranking metric, win-rate points."""

    def metric(self, rule: RecommendationRule) -> Interval | None:
        return self.lc_win_rate if rule.metric == "lc" else self.adjusted_win_rate


@dataclass(frozen=True)
class Difference:
    """The choice minus another candidate on the ranking metric, from the joint resamples, with
    an interval that holds simultaneously for the choice against every other candidate (the
    choice was selected as the best of them, so a single-pair interval would be too narrow)."""

    other: int
    difference: float
    low: float
    high: float
    level: float
    n_compared: int
    """How many candidates the simultaneous intervals cover."""
    n_shared_prompts: int


@dataclass(frozen=True)
class Decision:
    rule: RecommendationRule
    scores: tuple[CheckpointScore, ...]
    choice: int | None
    runner_up: int | None
    p_within_delta: float | None
    """P(the choice is within delta of the best candidate), over the joint resamples."""
    expected_regret: float | None
    """Expected shortfall of the choice from the best candidate, win-rate points."""
    lower_kl_preferred: bool
    """The choice is not the top estimate: it was preferred for its lower KL within delta."""
    runner_up_difference: Difference | None
    highest_reward: int | None
    last: int | None
    beats: dict[int, float]
    """Share of resamples in which the choice's metric is above each other candidate's."""
    alarms: tuple[Divergence, ...]
    problem: str | None = None
    """Why there is no choice (no checkpoints, no votes, every checkpoint excluded)."""

    def score(self, checkpoint_id: int | None) -> CheckpointScore | None:
        return next((s for s in self.scores if s.checkpoint_id == checkpoint_id), None)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
