"""Read models for the research pages: plain dataclasses built from SQL, no lazy ORM in templates.

Every function here issues a bounded number of queries whatever the size of a study (aggregates and
joins in SQL, one row per verdict at most), so a 10-checkpoint x 200-prompt x 2-rater study renders
in well under the page budget. Statistics come from `judging.stats` (pure functions); the bootstrap
intervals, the costly part, are memoised on the exact verdicts they were computed from, so a new
verdict recomputes them and an unchanged study does not.
"""

from __future__ import annotations

import math
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, TypeGuard, TypeVar, TypeVarTuple

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session, aliased

from judging.data.models import (
    Assignment,
    Checkpoint,
    Comparison,
    Evaluation,
    Generation,
    Judgement,
    Prompt,
    PromptSet,
    Rater,
    RaterExclusion,
    Recommendation,
    Study,
    StudyCheckpoint,
    TrainingMetric,
    TrainingRun,
)
from judging.data.overview import checkpoint_label
from judging.errors import NotFoundError
from judging.stats.agreement import winner as resolve_winner
from judging.stats.divergence import CurvePoint, Divergence, divergence_alarms
from judging.stats.divergence import Estimate as DivergenceEstimate
from judging.stats.lc_winrate import LengthVote, lc_win_rate_intervals
from judging.stats.rule import RecommendationRule
from judging.stats.winrate import Interval, Vote, vote_score, win_rate_interval
from judging.studies.counting import AUTO_SIDE, AutoTie, auto_ties, counted_verdict

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# Held-out metrics the pages plot and tabulate: key in Evaluation.summary -> label.
HELDOUT_METRICS: dict[str, str] = {
    "reward": "RM score (held-out)",
    "eval_reward": "Evaluation-RM score",
    "kl_k3": "KL k3 (held-out)",
    "kl_k1": "KL k1 (held-out)",
    "length_tokens": "Length (tokens)",
    "length_growth": "Length growth vs base",
    "truncation_rate": "Truncation rate",
    "seq_rep_4": "Seq-rep-4",
    "distinct_1": "Distinct-1",
    "distinct_2": "Distinct-2",
    "self_bleu": "Self-BLEU",
    "headers_rate": "Headers (share)",
    "bullets_rate": "Bullets (share)",
    "bold_rate": "Bold (share)",
    "emoji_rate": "Emoji (share)",
    "refusal_rate": "Refusals (share)",
    "sycophancy_rate": "Sycophancy markers (share)",
}

# Training-time series the pages plot: TrainingMetric.name -> label.
TRAINING_METRICS: dict[str, str] = {
    "objective/scores": "RM score (training)",
    "objective/rlhf_reward": "RLHF reward (training)",
    "objective/kl": "KL (training objective/kl)",
    "objective/kl_coef": "KL coefficient",
    "response_length": "Response length (training)",
    "truncation_rate": "Truncation rate (training)",
    "loss": "Loss",
}


# ---- runs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSummary:
    id: int
    name: str
    algorithm: str
    status: str
    base_model: str
    reward_model: str | None
    kl_coef: float | None
    """The configured initial KL coefficient (PPO), so runs can be told apart in legends."""
    device: str | None
    compute_spent_seconds: float
    compute_budget: dict[str, Any]
    checkpoints: int
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def legend(self) -> str:
        coef = f" (KL coef {self.kl_coef:g})" if self.kl_coef is not None else ""
        return f"{self.name}{coef}"


def _kl_coef(config: Mapping[str, Any]) -> float | None:
    for key in ("kl_coef", "init_kl_coef", "beta"):
        value = config.get(key)
        if value is None and isinstance(config.get("ppo"), Mapping):
            value = config["ppo"].get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def list_runs(session: Session, run_ids: Sequence[int] | None = None) -> list[RunSummary]:
    """Runs with their checkpoint count, newest first; only `run_ids` when given."""
    counts = (
        select(Checkpoint.run_id, func.count(Checkpoint.id).label("n"))
        .where(Checkpoint.kind == "trained")
        .group_by(Checkpoint.run_id)
        .subquery()
    )
    query = (
        select(TrainingRun, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.run_id == TrainingRun.id)
        .order_by(TrainingRun.created_at.desc(), TrainingRun.id.desc())
    )
    if run_ids is not None:
        query = query.where(TrainingRun.id.in_(list(run_ids)))
    return [
        RunSummary(
            id=run.id,
            name=run.name,
            algorithm=run.algorithm,
            status=run.status,
            base_model=run.base_model,
            reward_model=run.reward_model,
            kl_coef=_kl_coef(run.config or {}),
            device=run.device,
            compute_spent_seconds=float(run.compute_spent_seconds or 0.0),
            compute_budget=dict(run.compute_budget or {}),
            checkpoints=int(n),
            started_at=run.started_at,
            finished_at=run.finished_at,
        )
        for run, n in session.execute(query)
    ]


def get_run(session: Session, run_id: int) -> RunSummary:
    runs = list_runs(session, [run_id])
    if not runs:
        raise NotFoundError(f"training run {run_id} does not exist")
    return runs[0]


# ---- training metric series --------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    steps: list[int]
    values: list[float]


def metric_series(
    session: Session, run_ids: Sequence[int], names: Iterable[str] | None = None
) -> dict[int, dict[str, Series]]:
    """run id -> metric name -> (steps, values) in step order, in one query."""
    wanted = list(names) if names is not None else list(TRAINING_METRICS)
    out: dict[int, dict[str, Series]] = {rid: {} for rid in run_ids}
    if not run_ids or not wanted:
        return out
    rows = session.execute(
        select(
            TrainingMetric.run_id, TrainingMetric.name, TrainingMetric.step, TrainingMetric.value
        )
        .where(TrainingMetric.run_id.in_(list(run_ids)), TrainingMetric.name.in_(wanted))
        .order_by(TrainingMetric.run_id, TrainingMetric.name, TrainingMetric.step)
    )
    for run_id, name, step, value in rows:
        series = out[run_id].setdefault(name, Series([], []))
        series.steps.append(int(step))
        series.values.append(float(value))
    return out


def smooth(values: Sequence[float], weight: float = 0.6) -> list[float]:
    """TensorBoard's debiased exponential moving average (weight 0 returns the values)."""
    out: list[float] = []
    last, norm = 0.0, 0.0
    for value in values:
        last = weight * last + (1 - weight) * value
        norm = weight * norm + (1 - weight)
        out.append(last / norm)
    return out


# ---- checkpoints and their held-out evaluations ------------------------------------------------


@dataclass(frozen=True)
class Stat:
    """A held-out metric: a mean, with its 95% interval when the summary has one."""

    value: float
    low: float | None = None
    high: float | None = None


def summary_stat(summary: Mapping[str, Any] | None, key: str) -> Stat | None:
    """A metric of an Evaluation.summary, stored as a number or as {mean, ci_low, ci_high}."""
    raw = (summary or {}).get(key)
    if isinstance(raw, Mapping):
        mean = raw.get("mean")
        if not _number(mean):
            return None
        low, high = raw.get("ci_low"), raw.get("ci_high")
        return Stat(
            float(mean),
            float(low) if _number(low) else None,
            float(high) if _number(high) else None,
        )
    return Stat(float(raw)) if _number(raw) else None


def _number(value: object) -> TypeGuard[float | int]:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


@dataclass(frozen=True)
class CheckpointPoint:
    """One checkpoint (or base) with its train metrics and newest finished held-out evaluation."""

    id: int
    run_id: int
    run_name: str
    algorithm: str
    step: int
    kind: str
    status: str
    kl_coef: float | None
    compute_spent_seconds: float | None
    train: dict[str, float]
    summary: dict[str, Any] | None
    flags: list[str]
    prompt_set_id: int | None

    @property
    def label(self) -> str:
        return checkpoint_label(self.run_name, self.step, self.kind)

    def stat(self, key: str) -> Stat | None:
        return summary_stat(self.summary, key)

    def value(self, key: str) -> float | None:
        stat = self.stat(key)
        return stat.value if stat else None


def checkpoint_points(
    session: Session,
    *,
    run_ids: Sequence[int] | None = None,
    checkpoint_ids: Sequence[int] | None = None,
    prompt_set_id: int | None = None,
) -> list[CheckpointPoint]:
    """Checkpoints by run and step; the held-out summary is the newest finished evaluation
    (on `prompt_set_id` when given). Two queries."""
    query = (
        select(Checkpoint, TrainingRun.name, TrainingRun.algorithm)
        .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
        .order_by(TrainingRun.name, Checkpoint.step)
    )
    if run_ids is not None:
        query = query.where(Checkpoint.run_id.in_(list(run_ids)))
    if checkpoint_ids is not None:
        query = query.where(Checkpoint.id.in_(list(checkpoint_ids)))
    rows = session.execute(query).all()
    ids = [c.id for c, _, _ in rows]
    evaluations = select(
        Evaluation.checkpoint_id, Evaluation.summary, Evaluation.flags, Evaluation.prompt_set_id
    ).where(Evaluation.status == "done", Evaluation.checkpoint_id.in_(ids))
    if prompt_set_id is not None:
        evaluations = evaluations.where(Evaluation.prompt_set_id == prompt_set_id)
    newest: dict[int, tuple[dict[str, Any] | None, list[str], int]] = {}
    for cid, summary, flags, set_id in session.execute(
        evaluations.order_by(Evaluation.finished_at.asc().nulls_first(), Evaluation.id)
    ):
        newest[cid] = (summary, list(flags or []), set_id)
    out = []
    for ckpt, run_name, algorithm in rows:
        summary, flags, set_id = newest.get(ckpt.id, (None, [], None))
        out.append(
            CheckpointPoint(
                id=ckpt.id,
                run_id=ckpt.run_id,
                run_name=run_name,
                algorithm=algorithm,
                step=ckpt.step,
                kind=ckpt.kind,
                status=ckpt.status,
                kl_coef=ckpt.kl_coef,
                compute_spent_seconds=ckpt.compute_spent_seconds,
                train={k: float(v) for k, v in (ckpt.metrics or {}).items() if _number(v)},
                summary=summary,
                flags=flags,
                prompt_set_id=set_id,
            )
        )
    return out


def get_checkpoint_point(session: Session, checkpoint_id: int) -> CheckpointPoint:
    points = checkpoint_points(session, checkpoint_ids=[checkpoint_id])
    if not points:
        raise NotFoundError(f"checkpoint {checkpoint_id} does not exist")
    return points[0]


# ---- verdicts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VoteRow:
    """One verdict on a normal comparison, resolved to what won, with both responses' lengths."""

    study_id: int
    checkpoint_id: int
    prompt_id: int
    rater_id: int
    winner: str
    """checkpoint, reference, tie or both_bad."""
    candidate_tokens: int
    reference_tokens: int | None
    candidate_chars: int
    reference_chars: int | None

    @property
    def length_diff(self) -> int | None:
        """Candidate minus reference length in characters (the LC win rate's covariate, as in
        AlpacaEval); None for a comparison without a reference response."""
        if self.reference_chars is None:
            return None
        return self.candidate_chars - self.reference_chars


def _vote_query() -> Select[Any]:
    candidate = aliased(Generation)
    reference = aliased(Generation)
    return (
        select(
            Comparison.study_id,
            Comparison.checkpoint_id,
            Comparison.prompt_id,
            Assignment.rater_id,
            Judgement.id,
            Judgement.choice,
            Assignment.checkpoint_side,
            candidate.token_count,
            reference.token_count,
            func.length(candidate.text),
            func.length(reference.text),
        )
        .select_from(Judgement)
        .join(Assignment, Assignment.id == Judgement.assignment_id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .join(candidate, candidate.id == Comparison.candidate_generation_id)
        .outerjoin(reference, reference.id == Comparison.reference_generation_id)
        .where(Comparison.kind == "normal", counted_verdict())
    )


def _filtered(
    query: Select[*Ts],
    study_id: int | None,
    checkpoint_ids: Sequence[int] | None,
    against_base_only: bool,
) -> Select[*Ts]:
    if study_id is not None:
        query = query.where(Comparison.study_id == study_id)
    if checkpoint_ids is not None:
        query = query.where(Comparison.checkpoint_id.in_(list(checkpoint_ids)))
    if against_base_only:
        ref_ckpt = aliased(Checkpoint)
        query = query.join(Study, Study.id == Comparison.study_id).join(
            ref_ckpt, and_(ref_ckpt.id == Study.reference_checkpoint_id, ref_ckpt.kind == "base")
        )
    return query


def vote_rows(
    session: Session,
    *,
    study_id: int | None = None,
    checkpoint_ids: Sequence[int] | None = None,
    against_base_only: bool = False,
) -> list[VoteRow]:
    """Verdicts of one study, or of every study (against a base reference when asked)."""
    query = _filtered(_vote_query(), study_id, checkpoint_ids, against_base_only)
    keyed = [
        (
            (c, p, j),
            VoteRow(
                s,
                c,
                p,
                r,
                resolve_winner(choice, side),
                int(ct),
                None if rt is None else int(rt),
                int(cc),
                None if rc is None else int(rc),
            ),
        )
        for s, c, p, r, j, choice, side, ct, rt, cc, rc in session.execute(query)
    ]
    for tie in _auto_ties(session, study_id, checkpoint_ids, against_base_only):
        row = VoteRow(
            tie.study_id,
            tie.checkpoint_id,
            tie.prompt_id,
            0,
            resolve_winner(tie.choice, AUTO_SIDE),
            tie.candidate_tokens,
            tie.reference_tokens,
            tie.candidate_chars,
            tie.reference_chars,
        )
        keyed += [((tie.checkpoint_id, tie.prompt_id, 0), row)] * tie.copies
    # The order of evidence.study_votes, so the LC bootstrap sees identical input.
    return [row for _, row in sorted(keyed, key=lambda kr: kr[0])]


def _auto_ties(
    session: Session,
    study_id: int | None,
    checkpoint_ids: Sequence[int] | None,
    against_base_only: bool,
) -> list[AutoTie]:
    """Auto-tie comparisons within the same filter as the verdicts (judging.studies.counting)."""
    query = _filtered(
        select(Comparison.study_id).where(Comparison.auto_choice.is_not(None)).distinct(),
        study_id,
        checkpoint_ids,
        against_base_only,
    )
    studies = list(session.scalars(query))
    if not studies:
        return []
    ids = None if checkpoint_ids is None else set(checkpoint_ids)
    return [t for t in auto_ties(session, studies) if ids is None or t.checkpoint_id in ids]


def vote_fingerprint(
    session: Session,
    *,
    study_id: int | None = None,
    checkpoint_ids: Sequence[int] | None = None,
    against_base_only: bool = False,
) -> tuple[Any, ...]:
    """A small aggregate that changes whenever `vote_rows` would: (count, max id, sum of ids,
    sum of squared ids) of the counted judgements, plus (count, latest withdrawal) of withdrawn
    ones, (count, latest change) of the rater exclusions and (count, sum of ids) of the auto ties
    in scope. Judgements are inserted, never deleted; an undo UPDATEs `withdrawn_at` and an
    exclusion removes a rater's verdicts, so both are part of the key."""
    counted = _filtered(
        select(
            func.count(Judgement.id),
            func.coalesce(func.max(Judgement.id), 0),
            func.coalesce(func.sum(Judgement.id), 0),
            func.coalesce(func.sum(Judgement.id * Judgement.id), 0),
        )
        .select_from(Judgement)
        .join(Assignment, Assignment.id == Judgement.assignment_id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.kind == "normal", counted_verdict()),
        study_id,
        checkpoint_ids,
        against_base_only,
    )
    withdrawn = _filtered(
        select(func.count(Judgement.id), func.max(Judgement.withdrawn_at))
        .select_from(Judgement)
        .join(Assignment, Assignment.id == Judgement.assignment_id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.kind == "normal", Judgement.withdrawn_at.is_not(None)),
        study_id,
        checkpoint_ids,
        against_base_only,
    )
    exclusions = select(
        func.count(RaterExclusion.id),
        func.max(RaterExclusion.excluded_at),  # two maxima: SQLite has no greatest()
        func.max(RaterExclusion.restored_at),
        func.count(RaterExclusion.restored_at),
    )
    if study_id is not None:
        exclusions = exclusions.where(RaterExclusion.study_id == study_id)
    ties = _filtered(
        select(func.count(Comparison.id), func.coalesce(func.sum(Comparison.id), 0)).where(
            Comparison.kind == "normal", Comparison.auto_choice.is_not(None)
        ),
        study_id,
        checkpoint_ids,
        against_base_only,
    )
    return (
        *(int(v) for v in session.execute(counted).one()),
        *session.execute(withdrawn).one(),
        *session.execute(exclusions).one(),
        *(int(v) for v in session.execute(ties).one()),
    )


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


def votes_by_checkpoint(rows: Iterable[VoteRow]) -> dict[int, list[VoteRow]]:
    out: dict[int, list[VoteRow]] = defaultdict(list)
    for row in rows:
        out[row.checkpoint_id].append(row)
    return dict(out)


# ---- win rates (memoised on the verdicts) -----------------------------------------------------


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


# ---- studies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyInfo:
    id: int
    name: str
    status: str
    reference_checkpoint_id: int
    reference_label: str
    prompt_set_id: int
    prompt_set_name: str
    checkpoint_ids: list[int]
    raters_per_comparison: int


def get_study_info(session: Session, study_id: int) -> StudyInfo:
    row = session.execute(
        select(Study, PromptSet.name, TrainingRun.name, Checkpoint.step, Checkpoint.kind)
        .join(PromptSet, PromptSet.id == Study.prompt_set_id)
        .join(Checkpoint, Checkpoint.id == Study.reference_checkpoint_id)
        .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
        .where(Study.id == study_id)
    ).first()
    if row is None:
        raise NotFoundError(f"study {study_id} does not exist")
    study, set_name, run_name, step, kind = row
    ids = list(
        session.scalars(
            select(StudyCheckpoint.checkpoint_id)
            .where(StudyCheckpoint.study_id == study_id)
            .order_by(StudyCheckpoint.checkpoint_id)
        )
    )
    return StudyInfo(
        id=study.id,
        name=study.name,
        status=study.status,
        reference_checkpoint_id=study.reference_checkpoint_id,
        reference_label=checkpoint_label(run_name, step, kind),
        prompt_set_id=study.prompt_set_id,
        prompt_set_name=set_name,
        checkpoint_ids=ids,
        raters_per_comparison=study.raters_per_comparison,
    )


@dataclass(frozen=True)
class StudyLink:
    id: int
    name: str
    status: str
    verdicts: int


def list_studies(session: Session, checkpoint_ids: Sequence[int] | None = None) -> list[StudyLink]:
    """Studies (those judging any of `checkpoint_ids` when given) with their verdict counts."""
    verdicts = (
        select(Comparison.study_id, func.count(Judgement.id).label("n"))
        .join(Assignment, Assignment.comparison_id == Comparison.id)
        .join(Judgement, Judgement.assignment_id == Assignment.id)
        .where(Comparison.kind == "normal", counted_verdict())
        .group_by(Comparison.study_id)
        .subquery()
    )
    query = (
        select(Study.id, Study.name, Study.status, func.coalesce(verdicts.c.n, 0))
        .outerjoin(verdicts, verdicts.c.study_id == Study.id)
        .order_by(Study.created_at.desc(), Study.id.desc())
    )
    if checkpoint_ids is not None:
        members = select(StudyCheckpoint.study_id).where(
            StudyCheckpoint.checkpoint_id.in_(list(checkpoint_ids))
        )
        query = query.where(Study.id.in_(members))
    return [StudyLink(i, n, s, int(v)) for i, n, s, v in session.execute(query)]


@dataclass(frozen=True)
class RecommendationView:
    id: int
    checkpoint_id: int
    checkpoint_label: str
    method: str
    rationale: str
    evidence: dict[str, Any]
    created_at: datetime


def latest_recommendation(session: Session, study_id: int) -> RecommendationView | None:
    """The newest stored recommendation of a study (history stays in the table)."""
    row = session.execute(
        select(Recommendation, TrainingRun.name, Checkpoint.step, Checkpoint.kind)
        .join(Checkpoint, Checkpoint.id == Recommendation.checkpoint_id)
        .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
        .where(Recommendation.study_id == study_id)
        .order_by(Recommendation.created_at.desc(), Recommendation.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    rec, run_name, step, kind = row
    return RecommendationView(
        id=rec.id,
        checkpoint_id=rec.checkpoint_id,
        checkpoint_label=checkpoint_label(run_name, step, kind),
        method=rec.method,
        rationale=rec.rationale,
        evidence=dict(rec.evidence or {}),
        created_at=rec.created_at,
    )


# ---- per-prompt views --------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptTally:
    """One prompt's verdicts for one checkpoint (or over a whole study)."""

    prompt_id: int
    external_id: str
    text: str
    wins: int
    losses: int
    ties: int
    reward: float | None = None
    kl_k3: float | None = None
    token_count: int | None = None


def _tally(rows: Iterable[VoteRow]) -> dict[int, tuple[int, int, int]]:
    out: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        slot = 0 if r.winner == "checkpoint" else 1 if r.winner == "reference" else 2
        out[r.prompt_id][slot] += 1
    return {pid: (w, lo, t) for pid, (w, lo, t) in out.items()}


def checkpoint_prompts(session: Session, checkpoint_id: int) -> list[PromptTally]:
    """Every prompt this checkpoint answered on held-out sets, with its scores and verdicts."""
    tallies = _tally(verdicts(session, checkpoint_ids=[checkpoint_id]).rows)
    rows = session.execute(
        select(
            Prompt.id,
            Prompt.external_id,
            Prompt.text,
            Generation.reward_score,
            Generation.kl_k3,
            Generation.token_count,
        )
        .join(Generation, Generation.prompt_id == Prompt.id)
        .join(PromptSet, PromptSet.id == Prompt.prompt_set_id)
        .where(Generation.checkpoint_id == checkpoint_id, PromptSet.split == "heldout")
        .order_by(PromptSet.id, Prompt.position, Generation.seed)
    )
    out, seen = [], set()
    for pid, ext, text, reward, kl, tokens in rows:
        if pid in seen:
            continue
        seen.add(pid)
        w, lo, t = tallies.get(pid, (0, 0, 0))
        out.append(PromptTally(pid, ext, text, w, lo, t, reward, kl, tokens))
    return out


def study_prompts(session: Session, study: StudyInfo, rows: Sequence[VoteRow]) -> list[PromptTally]:
    """The study's prompts with their verdicts over all its checkpoints (one query)."""
    tallies = _tally(rows)
    prompts = session.execute(
        select(Prompt.id, Prompt.external_id, Prompt.text)
        .where(Prompt.prompt_set_id == study.prompt_set_id)
        .order_by(Prompt.position)
    )
    return [PromptTally(pid, ext, text, *tallies.get(pid, (0, 0, 0))) for pid, ext, text in prompts]


@dataclass(frozen=True)
class VerdictView:
    study_name: str
    rater_name: str
    winner: str
    rationale: str | None


@dataclass(frozen=True)
class ResponseView:
    """One checkpoint's response to the prompt, with its scores, diagnostics and verdicts."""

    checkpoint_id: int
    run_id: int
    run_name: str
    step: int
    kind: str
    text: str
    token_count: int
    finish_reason: str
    reward: float | None
    kl_k1: float | None
    kl_k3: float | None
    diagnostics: dict[str, Any]
    verdicts: list[VerdictView]

    @property
    def label(self) -> str:
        return checkpoint_label(self.run_name, self.step, self.kind)


@dataclass(frozen=True)
class PromptDrilldown:
    prompt_id: int
    external_id: str
    text: str
    prompt_set_name: str
    runs: dict[str, list[ResponseView]]
    """Run name -> its responses, base first then by step."""


def prompt_drilldown(
    session: Session, prompt_id: int, run_ids: Sequence[int] | None = None
) -> PromptDrilldown:
    """The base and every checkpoint's responses to one prompt across steps (three queries)."""
    head = session.execute(
        select(Prompt.external_id, Prompt.text, PromptSet.name)
        .join(PromptSet, PromptSet.id == Prompt.prompt_set_id)
        .where(Prompt.id == prompt_id)
    ).first()
    if head is None:
        raise NotFoundError(f"prompt {prompt_id} does not exist")
    query = (
        select(Generation, Checkpoint.run_id, TrainingRun.name, Checkpoint.step, Checkpoint.kind)
        .join(Checkpoint, Checkpoint.id == Generation.checkpoint_id)
        .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
        .where(Generation.prompt_id == prompt_id)
        .order_by(TrainingRun.name, Checkpoint.step, Generation.seed)
    )
    if run_ids is not None:
        query = query.where(Checkpoint.run_id.in_(list(run_ids)))
    generations = session.execute(query).all()
    verdicts: dict[int, list[VerdictView]] = defaultdict(list)
    for gen_id, study_name, rater_name, choice, side, rationale in session.execute(
        select(
            Comparison.candidate_generation_id,
            Study.name,
            Rater.name,
            Judgement.choice,
            Assignment.checkpoint_side,
            Judgement.rationale,
        )
        .join(Study, Study.id == Comparison.study_id)
        .join(Assignment, Assignment.comparison_id == Comparison.id)
        .join(Judgement, Judgement.assignment_id == Assignment.id)
        .join(Rater, Rater.id == Assignment.rater_id)
        .where(Comparison.prompt_id == prompt_id, Comparison.kind == "normal", counted_verdict())
        .order_by(Study.id, Rater.name)
    ):
        verdicts[gen_id].append(
            VerdictView(study_name, rater_name, resolve_winner(choice, side), rationale)
        )
    runs: dict[str, list[ResponseView]] = {}
    seen: set[int] = set()
    for gen, run_id, run_name, step, kind in generations:
        if gen.checkpoint_id in seen:  # one response per checkpoint: the first seed
            continue
        seen.add(gen.checkpoint_id)
        runs.setdefault(run_name, []).append(
            ResponseView(
                checkpoint_id=gen.checkpoint_id,
                run_id=run_id,
                run_name=run_name,
                step=step,
                kind=kind,
                text=gen.text,
                token_count=gen.token_count,
                finish_reason=gen.finish_reason,
                reward=gen.reward_score,
                kl_k1=gen.kl_k1,
                kl_k3=gen.kl_k3,
                diagnostics=dict(gen.diagnostics or {}),
                verdicts=verdicts.get(gen.id, []),
            )
        )
    return PromptDrilldown(prompt_id, head[0], head[1], head[2], runs)
