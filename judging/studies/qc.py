"""Read models for the admin pages: study progress, agreement, rater quality, and exports."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data.models import (
    Assignment,
    Checkpoint,
    Comparison,
    Judgement,
    Prompt,
    Rater,
    Study,
    TrainingRun,
)
from judging.stats import agreement as stats
from judging.studies.service import study_rater_ids


@dataclass(frozen=True)
class Row:
    """One assignment joined to everything an admin may see about it."""

    assignment_id: int
    comparison_id: int
    kind: str
    prompt_external_id: str
    checkpoint_label: str
    rater_id: int
    rater_name: str
    side: str
    status: str
    skip_reason: str | None
    choice: str | None
    rationale: str | None
    time_ms: int | None
    judged_at: str | None


def _label(run: str, step: int, kind: str) -> str:
    return f"{run}@base" if kind == "base" else f"{run}@{step}"


def study_rows(session: Session, study_id: int) -> list[Row]:
    query = (
        select(
            Assignment,
            Comparison,
            Prompt.external_id,
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
        .outerjoin(Judgement, Judgement.assignment_id == Assignment.id)
        .where(Comparison.study_id == study_id)
        .order_by(Comparison.id, Assignment.rater_id)
    )
    out = []
    for a, c, prompt_id, ckpt, run_name, rater_name, j in session.execute(query):
        out.append(
            Row(
                a.id,
                c.id,
                c.kind,
                prompt_id,
                _label(run_name, ckpt.step, ckpt.kind),
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


@dataclass
class CheckpointQc:
    label: str
    comparisons: int = 0
    judged: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    win_rate: float | None = None
    """(wins + ties/2) / judged, both_bad counted as a tie (as FastChat does)."""


@dataclass
class StudyQc:
    raters: list[RaterQc]
    checkpoints: list[CheckpointQc]
    done: int
    total: int
    pairs: int
    raw_agreement: float | None
    cohen_kappa: float | None
    krippendorff_alpha: float | None
    skips: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(rater, prompt id, reason) of items currently skipped."""


def _rater_qc(rid: int, name: str, in_study: bool, rows: list[Row]) -> RaterQc:
    judged = [r for r in rows if r.choice is not None]
    checks = [r for r in judged if r.kind == "attention"]
    times = [r.time_ms / 1000 for r in judged if r.time_ms is not None]
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


def _checkpoint_qc(label: str, rows: list[Row]) -> CheckpointQc:
    normal = [r for r in rows if r.kind == "normal"]
    verdicts = Counter(stats.winner(r.choice, r.side) for r in normal if r.choice)
    judged = sum(verdicts.values())
    wins = verdicts["checkpoint"] + 0.5 * (verdicts["tie"] + verdicts["both_bad"])
    return CheckpointQc(
        label,
        len({r.comparison_id for r in normal}),
        judged,
        dict(verdicts),
        wins / judged if judged else None,
    )


def study_qc(session: Session, study: Study) -> StudyQc:
    rows = study_rows(session, study.id)
    members = set(study_rater_ids(session, study.id))
    by_rater: dict[int, list[Row]] = defaultdict(list)
    names = {r.id: r.name for r in session.scalars(select(Rater).where(Rater.id.in_(members)))}
    for row in rows:
        by_rater[row.rater_id].append(row)
        names[row.rater_id] = row.rater_name
    by_ckpt: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_ckpt[row.checkpoint_label].append(row)
    units: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for row in rows:
        if row.kind == "normal" and row.choice:
            units[row.comparison_id].append((row.rater_id, stats.winner(row.choice, row.side)))
    labels = [[v for _, v in sorted(u)] for u in units.values()]
    pairs = [(u[0], u[1]) for u in labels if len(u) == 2]
    return StudyQc(
        raters=[
            _rater_qc(r, names[r], r in members, by_rater[r])
            for r in sorted(names, key=lambda i: names[i])
        ],
        checkpoints=[_checkpoint_qc(label, by_ckpt[label]) for label in sorted(by_ckpt)],
        done=sum(r.choice is not None for r in rows),
        total=len(rows),
        pairs=sum(len(u) >= 2 for u in labels),
        raw_agreement=stats.raw_agreement(labels),
        cohen_kappa=stats.cohen_kappa(pairs),
        krippendorff_alpha=stats.krippendorff_alpha_nominal(labels),
        skips=[
            (r.rater_name, r.prompt_external_id, r.skip_reason)
            for r in rows
            if r.status == "skipped"
        ],
    )


EXPORT_FIELDS = (
    "study",
    "prompt_id",
    "kind",
    "checkpoint",
    "rater",
    "checkpoint_side",
    "choice",
    "winner",
    "rationale",
    "time_on_item_ms",
    "judged_at",
)


def pseudonym(key: bytes, rater_id: int) -> str:
    """A stable pseudonym: the same rater gets the same one in every export signed by this key."""
    digest = hmac.new(key, f"rater:{rater_id}".encode(), hashlib.sha256).hexdigest()
    return f"rater-{digest[:8]}"


def export_records(
    session: Session, study: Study, *, anonymise: bool, key: bytes
) -> list[dict[str, Any]]:
    """Judged rows of a study, unblinded (checkpoint labels); rater names only if not anonymised."""
    out = []
    for r in study_rows(session, study.id):
        if r.choice is None:
            continue
        out.append(
            {
                "study": study.name,
                "prompt_id": r.prompt_external_id,
                "kind": r.kind,
                "checkpoint": r.checkpoint_label,
                "rater": pseudonym(key, r.rater_id) if anonymise else r.rater_name,
                "checkpoint_side": r.side,
                "choice": r.choice,
                "winner": stats.winner(r.choice, r.side),
                "rationale": r.rationale or "",
                "time_on_item_ms": r.time_ms,
                "judged_at": r.judged_at,
            }
        )
    return out


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _cell(value: Any) -> Any:
    # A leading = + - @ (or a tab/CR/LF before one) makes spreadsheets run the cell as a formula
    # (CSV injection, OWASP); a real number such as -0.3 is data and stays as it is.
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def to_csv(records: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    # CRLF as RFC 4180 says: with "\n" alone the writer leaves a bare CR in a value unquoted, and
    # readers then split that row in two.
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in r.items()} for r in records)
    return buffer.getvalue()


def to_jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


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
    all_ckpts = [(i, _label(n, s, k), k) for i, n, s, k in rows]
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
    return _label(*row) if row else f"checkpoint {checkpoint_id}"
