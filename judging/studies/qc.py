"""Read models for the admin pages: study progress, agreement and rater quality.

Exports of judgements live in judging.analysis.exports.

Statistics follow the design of a study: the unit of sampling is the prompt, so each checkpoint's
win rate against the reference carries a 95% interval from a bootstrap that resamples prompts
(judging.stats.winrate); agreement is Cohen's kappa per pair of real raters plus Fleiss' kappa and
Krippendorff's alpha over comparisons. Checkpoints are scored on the prompts that *every*
checkpoint of the study has a comparison for, and prompts missing for some checkpoint (no
generation when the study was built) are listed and flagged rather than silently dropped. Raters
an admin excluded (recorded, reversible) are left out of every statistic but still listed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from judging.data.models import (
    Assignment,
    Checkpoint,
    Comparison,
    Judgement,
    Prompt,
    Rater,
    RaterExclusion,
    Study,
    StudyCheckpoint,
    TrainingRun,
)
from judging.data.overview import checkpoint_label as _checkpoint_name
from judging.errors import ConflictError, NotFoundError
from judging.stats import agreement as stats
from judging.stats.winrate import Interval, Vote, vote_score, win_rate, win_rate_interval
from judging.studies.counting import AUTO_SIDE
from judging.studies.lookups import study_rater_ids

UNCATEGORISED = "uncategorised"


@dataclass(frozen=True)
class Row:
    """One assignment joined to everything an admin may see about it."""

    assignment_id: int
    comparison_id: int
    kind: str
    prompt_external_id: str
    checkpoint_label: str
    prompt_id: int
    category: str | None
    rater_id: int
    rater_name: str
    side: str
    status: str
    skip_reason: str | None
    choice: str | None
    rationale: str | None
    time_ms: int | None
    judged_at: str | None


def study_rows(session: Session, study_id: int) -> list[Row]:
    query = (
        select(
            Assignment,
            Comparison,
            Prompt.external_id,
            Prompt.category,
            Checkpoint,
            TrainingRun.name,
            Rater.name,
            Judgement,
        )
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .join(Prompt, Prompt.id == Comparison.prompt_id)
        .join(Checkpoint, Checkpoint.id == Comparison.checkpoint_id)
        .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
        .join(Rater, Rater.id == Assignment.rater_id)
        .outerjoin(
            Judgement,
            and_(Judgement.assignment_id == Assignment.id, Judgement.withdrawn_at.is_(None)),
        )
        # An item handed back to the pool lives on in its new rater's assignment.
        .where(Comparison.study_id == study_id, Assignment.status != "released")
        .order_by(Comparison.id, Assignment.rater_id)
    )
    out = []
    for a, c, prompt_id, category, ckpt, run_name, rater_name, j in session.execute(query):
        out.append(
            Row(
                a.id,
                c.id,
                c.kind,
                prompt_id,
                _checkpoint_name(run_name, ckpt.step, ckpt.kind),
                c.prompt_id,
                category,
                a.rater_id,
                rater_name,
                a.checkpoint_side,
                a.status,
                a.skip_reason,
                j.choice if j else None,
                j.rationale if j else None,
                j.time_on_item_ms if j else None,
                j.created_at.isoformat() if j else None,
            )
        )
    return out


AUTO_RATER = "(identical texts)"


def auto_tie_rows(session: Session, study: Study) -> list[Row]:
    """Comparisons never sent to humans (both texts identical) as ties, one per rater slot,
    so such a prompt weighs in a checkpoint's win rate as much as a judged one."""
    query = (
        select(Comparison, Prompt.external_id, Prompt.category, Checkpoint, TrainingRun.name)
        .join(Prompt, Prompt.id == Comparison.prompt_id)
        .join(Checkpoint, Checkpoint.id == Comparison.checkpoint_id)
        .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
        .where(Comparison.study_id == study.id, Comparison.auto_choice.is_not(None))
        .order_by(Comparison.id)
    )
    return [
        Row(
            0,
            c.id,
            c.kind,
            external_id,
            _checkpoint_name(run_name, ckpt.step, ckpt.kind),
            c.prompt_id,
            category,
            0,
            AUTO_RATER,
            AUTO_SIDE,
            "done",
            c.closed_reason,
            c.auto_choice,
            None,
            None,
            None,
        )
        for c, external_id, category, ckpt, run_name in session.execute(query)
        for _ in range(study.raters_per_comparison)
    ]


@dataclass
class RaterQc:
    rater_id: int
    name: str
    in_study: bool
    assigned: int = 0
    done: int = 0
    skipped: int = 0
    left_share: float | None = None
    median_time_s: float | None = None
    attention_total: int = 0
    attention_pass_rate: float | None = None
    below_pass_rate: bool = False
    """Failed more attention checks than the study's minimum pass rate allows."""
    excluded: bool = False
    """Left out of every statistic by an admin (see RaterExclusion)."""
    excluded_by: str | None = None
    excluded_at: datetime | None = None


@dataclass
class CheckpointQc:
    label: str
    comparisons: int = 0
    judged: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    win_rate: float | None = None
    """(wins + ties/2) / verdicts on the prompts every checkpoint has; both_bad counts as a tie."""
    interval: Interval | None = None
    """95% percentile interval from a bootstrap that resamples prompts (the sampling unit)."""
    all_prompts_win_rate: float | None = None
    """The same over every prompt this checkpoint has (differs only under uneven coverage)."""
    missing_prompts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CategoryQc:
    category: str
    label: str
    judged: int
    win_rate: float | None


@dataclass
class StudyQc:
    raters: list[RaterQc]
    checkpoints: list[CheckpointQc]
    done: int
    total: int
    pairs: int
    raw_agreement: float | None
    krippendorff_alpha: float | None
    fleiss_kappa: float | None = None
    fleiss_units: int = 0
    """Comparisons with exactly raters_per_comparison verdicts (Fleiss needs a fixed count)."""
    pair_agreement: list[stats.PairAgreement] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    """(checkpoint, prompt id) pairs of the prompt set with no comparison (no generation)."""
    uneven_coverage: bool = False
    shared_prompts: int = 0
    categories: list[CategoryQc] = field(default_factory=list)
    min_attention_pass_rate: float = 0.8
    skips: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(rater, prompt id, reason) of items currently skipped."""


def _rater_qc(rid: int, name: str, in_study: bool, rows: list[Row]) -> RaterQc:
    judged = [r for r in rows if r.choice is not None]
    checks = [r for r in judged if r.kind == "attention"]
    times = [r.time_ms / 1000 for r in judged if r.time_ms is not None]
    # Passing an attention check = picking the intact response, always on the checkpoint's side.
    return RaterQc(
        rid,
        name,
        in_study,
        len(rows),
        len(judged),
        sum(r.status == "skipped" for r in rows),
        stats.position_bias(r.choice for r in judged if r.kind == "normal" and r.choice),
        stats.median_or_none(times),
        len(checks),
        stats.pass_rate(r.choice == r.side for r in checks),
    )


def _votes(rows: list[Row]) -> list[Vote]:
    return [
        Vote(r.prompt_id, vote_score(stats.winner(r.choice, r.side)))
        for r in rows
        if r.kind == "normal" and r.choice
    ]


def _checkpoint_qc(
    label: str,
    rows: list[Row],
    counted: list[Row],
    shared: set[int],
    missing: list[str],
    n_boot: int,
) -> CheckpointQc:
    """`rows`: every row of the checkpoint; `counted`: those of raters not excluded."""
    normal = [r for r in counted if r.kind == "normal"]
    verdicts = Counter(stats.winner(r.choice, r.side) for r in normal if r.choice)
    on_shared = _votes([r for r in normal if r.prompt_id in shared])
    return CheckpointQc(
        label,
        len({r.comparison_id for r in rows if r.kind == "normal"}),
        sum(verdicts.values()),
        dict(verdicts),
        win_rate(on_shared),
        win_rate_interval(on_shared, n_boot=n_boot) if n_boot else None,
        win_rate(_votes(normal)),
        missing,
    )


def _coverage(
    session: Session, study: Study, rows: list[Row]
) -> tuple[dict[str, list[str]], set[int]]:
    """(checkpoint label -> prompts with no comparison, prompts every checkpoint has)."""
    prompts = dict(
        session.execute(
            select(Prompt.id, Prompt.external_id)
            .where(Prompt.prompt_set_id == study.prompt_set_id)
            .order_by(Prompt.position)
        ).all()
    )
    labels = [
        checkpoint_label(session, c)
        for c in session.scalars(
            select(StudyCheckpoint.checkpoint_id).where(StudyCheckpoint.study_id == study.id)
        )
    ]
    have: dict[str, set[int]] = {label: set() for label in labels}
    for r in rows:
        if r.kind == "normal":
            have.setdefault(r.checkpoint_label, set()).add(r.prompt_id)
    missing = {
        label: [ext for pid, ext in prompts.items() if pid not in got]
        for label, got in have.items()
    }
    shared = set(prompts).intersection(*have.values()) if have else set()
    return missing, shared


def _categories(counted: list[Row], shared: set[int]) -> list[CategoryQc]:
    cells: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in counted:
        if r.kind == "normal" and r.choice and r.prompt_id in shared:
            cells[(r.category or UNCATEGORISED, r.checkpoint_label)].append(r)
    return [
        CategoryQc(category, label, len(cell), win_rate(_votes(cell)))
        for (category, label), cell in sorted(cells.items())
    ]


def _agreement(report: StudyQc, counted: list[Row], per_comparison: int) -> None:
    units: dict[int, dict[str, str]] = defaultdict(dict)
    for row in counted:
        if row.kind == "normal" and row.choice:
            units[row.comparison_id][row.rater_name] = stats.winner(row.choice, row.side)
    labels = [list(u.values()) for u in units.values()]
    full = [u for u in labels if len(u) == per_comparison]
    report.pairs = sum(len(u) >= 2 for u in labels)
    report.raw_agreement = stats.raw_agreement(labels)
    report.krippendorff_alpha = stats.krippendorff_alpha_nominal(labels)
    report.pair_agreement = stats.pairwise_cohen_kappa(units.values())
    report.fleiss_units = len(full)
    report.fleiss_kappa = stats.fleiss_kappa(full) if per_comparison >= 2 else None


def study_qc(session: Session, study: Study, *, n_boot: int = 2000) -> StudyQc:
    """Everything the study and QC pages show; `n_boot=0` skips the intervals (about 0.25 s per
    checkpoint at 200 prompts x 2 verdicts), e.g. for a progress listing."""
    rows = study_rows(session, study.id)
    members = set(study_rater_ids(session, study.id))
    exclusions = active_exclusions(session, study.id)
    by_rater: dict[int, list[Row]] = defaultdict(list)
    names = {r.id: r.name for r in session.scalars(select(Rater).where(Rater.id.in_(members)))}
    for row in rows:
        by_rater[row.rater_id].append(row)
        names[row.rater_id] = row.rater_name
    counted = [r for r in rows if r.rater_id not in exclusions]
    # Identical pairs count as ties for their checkpoint, never as a rater's verdicts.
    auto = auto_tie_rows(session, study)
    by_ckpt: dict[str, list[Row]] = defaultdict(list)
    for row in rows + auto:
        by_ckpt[row.checkpoint_label].append(row)
    missing, shared = _coverage(session, study, rows + auto)
    raters = []
    for rid in sorted(names, key=lambda i: names[i]):
        rater = _rater_qc(rid, names[rid], rid in members, by_rater[rid])
        rate = rater.attention_pass_rate
        rater.below_pass_rate = rate is not None and rate < study.min_attention_pass_rate
        if rid in exclusions:
            rater.excluded = True
            rater.excluded_by, rater.excluded_at = exclusions[rid]
        raters.append(rater)
    report = StudyQc(
        raters=raters,
        checkpoints=[
            _checkpoint_qc(
                label,
                by_ckpt.get(label, []),
                [r for r in counted + auto if r.checkpoint_label == label],
                shared,
                missing.get(label, []),
                n_boot,
            )
            for label in sorted(set(by_ckpt) | set(missing))
        ],
        done=sum(r.choice is not None for r in rows),
        total=len(rows),
        pairs=0,
        raw_agreement=None,
        krippendorff_alpha=None,
        missing=[(label, ext) for label in sorted(missing) for ext in missing[label]],
        uneven_coverage=any(missing.values()),
        shared_prompts=len(shared),
        categories=_categories(counted + auto, shared),
        min_attention_pass_rate=study.min_attention_pass_rate,
        skips=[
            (r.rater_name, r.prompt_external_id, r.skip_reason)
            for r in rows
            if r.status == "skipped"
        ],
    )
    _agreement(report, counted, study.raters_per_comparison)
    return report


def active_exclusions(session: Session, study_id: int) -> dict[int, tuple[str | None, datetime]]:
    """rater id -> (who excluded them, when) for the study's current exclusions."""
    rows = session.execute(
        select(RaterExclusion.rater_id, Rater.name, RaterExclusion.excluded_at)
        .outerjoin(Rater, Rater.id == RaterExclusion.excluded_by_id)
        .where(RaterExclusion.study_id == study_id, RaterExclusion.restored_at.is_(None))
    )
    return {rid: (by, at) for rid, by, at in rows}


def excluded_rater_ids(session: Session, study_id: int) -> set[int]:
    return set(active_exclusions(session, study_id))


def exclude_rater(
    session: Session, study: Study, rater_id: int, *, by: int, reason: str | None = None
) -> RaterExclusion:
    """Leave a rater's verdicts out of the study's statistics; recorded with who and when."""
    if session.get(Rater, rater_id) is None:
        raise NotFoundError(f"rater {rater_id} does not exist")
    if rater_id in excluded_rater_ids(session, study.id):
        raise ConflictError("that rater is already excluded from this study's statistics")
    record = RaterExclusion(
        study_id=study.id, rater_id=rater_id, excluded_by_id=by, reason=(reason or None)
    )
    session.add(record)
    session.flush()
    return record


def restore_rater(session: Session, study: Study, rater_id: int, *, by: int) -> None:
    """Count a previously excluded rater again; the exclusion row stays as the record."""
    record = session.scalar(
        select(RaterExclusion)
        .where(
            RaterExclusion.study_id == study.id,
            RaterExclusion.rater_id == rater_id,
            RaterExclusion.restored_at.is_(None),
        )
        .with_for_update()
    )
    if record is None:
        raise ConflictError("that rater is not excluded from this study's statistics")
    record.restored_at, record.restored_by_id = datetime.now(UTC), by
    session.flush()


def as_dict(report: StudyQc) -> dict[str, Any]:
    return asdict(report)


@dataclass(frozen=True)
class Option:
    id: int
    label: str


@dataclass(frozen=True)
class FormOptions:
    checkpoints: list[Option]
    references: list[Option]
    prompt_sets: list[Option]
    raters: list[Option]


def form_options(session: Session) -> FormOptions:
    """Choices for the study forms: trained checkpoints, all checkpoints, held-out sets, raters."""
    from judging.data.models import PromptSet

    rows = session.execute(
        select(Checkpoint.id, TrainingRun.name, Checkpoint.step, Checkpoint.kind)
        .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
        .order_by(TrainingRun.name, Checkpoint.step)
    )
    all_ckpts = [(i, _checkpoint_name(n, s, k), k) for i, n, s, k in rows]
    sets = session.execute(
        select(PromptSet.id, PromptSet.name)
        .where(PromptSet.split == "heldout")
        .order_by(PromptSet.name)
    )
    raters = session.execute(select(Rater.id, Rater.name).order_by(Rater.name))
    return FormOptions(
        checkpoints=[Option(i, label) for i, label, k in all_ckpts if k == "trained"],
        references=[Option(i, label) for i, label, _ in all_ckpts],
        prompt_sets=[Option(i, n) for i, n in sets],
        raters=[Option(i, n) for i, n in raters],
    )


def checkpoint_label(session: Session, checkpoint_id: int) -> str:
    row = session.execute(
        select(TrainingRun.name, Checkpoint.step, Checkpoint.kind)
        .join(TrainingRun, TrainingRun.id == Checkpoint.run_id)
        .where(Checkpoint.id == checkpoint_id)
    ).first()
    return _checkpoint_name(*row) if row else f"checkpoint {checkpoint_id}"
