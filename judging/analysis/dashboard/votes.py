"""A study's verdicts as rows, one per judgement, and the fingerprint the caches key on."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVarTuple

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session, aliased

from judging.data.models import (
    Assignment,
    Checkpoint,
    Comparison,
    Generation,
    Judgement,
    RaterExclusion,
    Study,
)
from judging.stats.agreement import winner as resolve_winner
from judging.studies.counting import AUTO_SIDE, AutoTie, auto_ties, counted_verdict

Ts = TypeVarTuple("Ts")


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


def votes_by_checkpoint(rows: Iterable[VoteRow]) -> dict[int, list[VoteRow]]:
    out: dict[int, list[VoteRow]] = defaultdict(list)
    for row in rows:
        out[row.checkpoint_id].append(row)
    return dict(out)
