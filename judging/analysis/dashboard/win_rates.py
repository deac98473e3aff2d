"""Win rates and divergence alarms, memoised on the exact verdicts they were computed from."""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from judging.analysis.dashboard.checkpoints import CheckpointPoint
from judging.analysis.dashboard.votes import (
    VoteRow,
    vote_fingerprint,
    vote_rows,
    votes_by_checkpoint,
)
from judging.stats.divergence import CurvePoint, Divergence, divergence_alarms
from judging.stats.divergence import Estimate as DivergenceEstimate
from judging.stats.lc_winrate import LengthVote, lc_win_rate_intervals
from judging.stats.rule import RecommendationRule
from judging.stats.winrate import Interval, Vote, vote_score, win_rate_interval

T = TypeVar("T")


@dataclass(frozen=True)
class Verdicts:
    rows: list[VoteRow]
    rates: dict[int, WinRates]


_VERDICTS: OrderedDict[tuple[Any, ...], Verdicts] = OrderedDict()


def verdicts(
    session: Session,
    *,
    study_id: int | None = None,
    checkpoint_ids: Sequence[int] | None = None,
    against_base_only: bool = False,
) -> Verdicts:
    """`vote_rows` and their `win_rates`, memoised on the verdicts' fingerprint: an unchanged
    study costs one aggregate query, a new verdict reloads the rows and recomputes."""
    ids = tuple(sorted(checkpoint_ids)) if checkpoint_ids is not None else None
    bind = session.get_bind()
    where = str(bind.url) if hasattr(bind, "url") else ""
    fingerprint = vote_fingerprint(
        session, study_id=study_id, checkpoint_ids=ids, against_base_only=against_base_only
    )
    key = (where, study_id, ids, against_base_only, fingerprint)

    def load() -> Verdicts:
        rows = vote_rows(
            session, study_id=study_id, checkpoint_ids=ids, against_base_only=against_base_only
        )
        return Verdicts(rows, win_rates(rows))

    return _remember(_VERDICTS, key, load)


@dataclass(frozen=True)
class WinRates:
    """A checkpoint's human win rate against the reference: raw and length-controlled."""

    checkpoint_id: int
    raw: Interval | None
    lc: Interval | None
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def n_votes(self) -> int:
        return sum(self.outcomes.values())


_RAW_CACHE: OrderedDict[tuple[Any, ...], tuple[Interval | None, dict[str, int]]] = OrderedDict()


_LC_CACHE: OrderedDict[tuple[Any, ...], dict[int, Interval]] = OrderedDict()


_CACHE_SIZE = 512


N_BOOT = 1000


LC_BOOT = RecommendationRule().n_boot
"""The recommendation's resample count (and seed 0): pages show the LC intervals it ranks by."""


def _remember(
    cache: OrderedDict[tuple[Any, ...], T], key: tuple[Any, ...], make: Callable[[], T]
) -> T:
    """Memoise on the exact inputs: a new verdict changes the key, an unchanged study hits."""
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = cache[key] = make()
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


def _raw(rows: Sequence[VoteRow], n_boot: int, seed: int) -> tuple[Interval | None, dict[str, int]]:
    outcomes: dict[str, int] = defaultdict(int)
    for r in rows:
        outcomes[r.winner] += 1
    votes = [Vote(r.prompt_id, vote_score(r.winner)) for r in rows]
    return win_rate_interval(votes, n_boot=n_boot, seed=seed), dict(outcomes)


def study_lc(rows: Sequence[VoteRow], n_boot: int = LC_BOOT, seed: int = 0) -> dict[int, Interval]:
    """LC win rates of one study's checkpoints with the length slope shared across them, fed the
    same votes in the same order as `evidence.study_votes` (so the same numbers as the
    recommendation); comparisons without a reference response are left out."""
    groups: dict[int, list[LengthVote]] = defaultdict(list)
    for r in rows:
        if r.length_diff is not None:
            groups[r.checkpoint_id].append(
                LengthVote(r.prompt_id, vote_score(r.winner), float(r.length_diff))
            )
    return lc_win_rate_intervals(groups, n_boot, seed, model=RecommendationRule().model)


def win_rates(
    rows: Sequence[VoteRow], *, n_boot: int = N_BOOT, lc_boot: int = LC_BOOT, seed: int = 0
) -> dict[int, WinRates]:
    """Per checkpoint: raw win rate over all its verdicts with a prompt-clustered 95% interval,
    outcomes, and the LC win rate of its study (the study with most of its verdicts when several
    judged it)."""
    by_study: dict[int, list[VoteRow]] = defaultdict(list)
    for r in rows:
        by_study[r.study_id].append(r)
    lc: dict[int, tuple[int, Interval]] = {}
    for study_id, mine in by_study.items():
        key: tuple[Any, ...] = (
            study_id,
            lc_boot,
            seed,
            tuple((r.checkpoint_id, r.prompt_id, r.winner, r.length_diff) for r in mine),
        )
        intervals = _remember(_LC_CACHE, key, partial(study_lc, mine, lc_boot, seed))
        for checkpoint_id, interval in intervals.items():
            if checkpoint_id not in lc or interval.n_votes > lc[checkpoint_id][0]:
                lc[checkpoint_id] = (interval.n_votes, interval)
    out: dict[int, WinRates] = {}
    for checkpoint_id, mine in votes_by_checkpoint(rows).items():
        key = (
            checkpoint_id,
            n_boot,
            seed,
            tuple((r.prompt_id, r.rater_id, r.winner) for r in mine),
        )
        raw, outcomes = _remember(_RAW_CACHE, key, partial(_raw, mine, n_boot, seed))
        found = lc.get(checkpoint_id)
        out[checkpoint_id] = WinRates(checkpoint_id, raw, found[1] if found else None, outcomes)
    return out


@dataclass(frozen=True)
class Alarm:
    """Reward-model score and human win rate moved apart between two consecutive checkpoints."""

    before: CheckpointPoint
    after: CheckpointPoint
    divergence: Divergence

    @property
    def text(self) -> str:
        d = self.divergence
        what = (
            "reward up, humans down"
            if d.kind == "reward_up_humans_down"
            else "reward down, humans up"
        )
        return (
            f"{self.before.label} → {self.after.label}: {what} (RM {d.reward_change:+.3f}, "
            f"win rate {d.win_rate_change:+.3f}; beyond both 95% intervals)"
        )


def alarms(points: Sequence[CheckpointPoint], rates: Mapping[int, WinRates]) -> list[Alarm]:
    """The divergence alarm (`judging.stats.divergence`) along each run's judged checkpoints."""
    out: list[Alarm] = []
    by_id: dict[Hashable, CheckpointPoint] = {p.id: p for p in points}
    runs: dict[int, list[CurvePoint]] = defaultdict(list)
    for p in points:
        stat, wr = p.stat("reward"), rates.get(p.id)
        if stat is None or stat.low is None or stat.high is None or wr is None or wr.raw is None:
            continue
        reward = DivergenceEstimate(stat.value, stat.low, stat.high)
        runs[p.run_id].append(CurvePoint(p.id, p.step, reward, wr.raw))
    for curve in runs.values():
        for d in divergence_alarms(curve):
            out.append(Alarm(by_id[d.before], by_id[d.after], d))
    return out
