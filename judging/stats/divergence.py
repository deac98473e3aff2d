"""The divergence alarm: reward-model score and human win rate move in opposite directions.

Between two consecutive checkpoints of a run, a move counts only when it is beyond the intervals:
the later interval lies entirely above (or below) the earlier one. When the reward model's score
goes up beyond its interval while the human win rate goes down beyond its own, the policy is
optimising the proxy against the humans (Gao et al.'s over-optimisation): the alarm the dashboard
shows and the recommendation cites. Non-overlapping 95% intervals are a conservative test (about
p < 0.006 for equal widths), so an alarm is rarely a false one.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol


class Band(Protocol):
    """Anything with an estimate and an interval (`winrate.Interval` qualifies)."""

    @property
    def estimate(self) -> float: ...
    @property
    def low(self) -> float: ...
    @property
    def high(self) -> float: ...


@dataclass(frozen=True)
class Estimate:
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class CurvePoint:
    """One checkpoint on a run's curve: its reward-model score and human win rate."""

    key: Hashable
    step: int
    reward: Band | None
    win_rate: Band | None


Direction = Literal["up", "down", "flat"]


@dataclass(frozen=True)
class Divergence:
    before: Hashable
    after: Hashable
    before_step: int
    after_step: int
    reward_change: float
    win_rate_change: float
    kind: Literal["reward_up_humans_down", "reward_down_humans_up"]


def direction(before: Band, after: Band) -> Direction:
    """Up or down only when the two intervals do not overlap."""
    if after.low > before.high:
        return "up"
    if after.high < before.low:
        return "down"
    return "flat"


def divergence_alarms(points: Sequence[CurvePoint]) -> list[Divergence]:
    """Consecutive checkpoints (by step) where the two curves move apart beyond their intervals."""
    ordered = sorted(points, key=lambda p: p.step)
    alarms = []
    for prev, nxt in itertools.pairwise(ordered):
        if prev.reward is None or nxt.reward is None:
            continue
        if prev.win_rate is None or nxt.win_rate is None:
            continue
        reward, human = direction(prev.reward, nxt.reward), direction(prev.win_rate, nxt.win_rate)
        if {reward, human} != {"up", "down"}:
            continue
        alarms.append(
            Divergence(
                prev.key,
                nxt.key,
                prev.step,
                nxt.step,
                nxt.reward.estimate - prev.reward.estimate,
                nxt.win_rate.estimate - prev.win_rate.estimate,
                "reward_up_humans_down" if reward == "up" else "reward_down_humans_up",
            )
        )
    return alarms
