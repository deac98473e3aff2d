"""The stored recommendation: compute from the database, keep every version, refresh when stale.

Each row of `recommendations` holds the choice, the generated explanation (`rationale`) and, in
`evidence`, the rule, every checkpoint's numbers, the decision (intervals, confidence,
comparisons) and a fingerprint of the inputs. A recommendation is stale when the fingerprint of
the current inputs (verdicts, evaluation summaries, training metrics, rule) differs from the newest
stored one's: a new verdict, an undone one, a finished evaluation. `refresh_recommendation` then
appends a new row; rows are never updated, so the history shows how the choice moved as verdicts
came in. Nothing is stored when no checkpoint qualifies (the table needs a checkpoint).

The bootstrap costs a few seconds for 10 checkpoints x 200 prompts x 2 raters (1000 resamples), so
callers on a request path should read `latest_recommendation` and refresh out of band.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.analysis.explain import explain
from judging.data.models import Recommendation
from judging.stats.bradley_terry import PairVote, bradley_terry_intervals
from judging.stats.recommend import recommend
from judging.stats.rule import METHOD, CheckpointEvidence, Decision, RecommendationRule
from judging.studies.evidence import StudyEvidence, load_study_evidence


@dataclass(frozen=True)
class Refreshed:
    """The newest recommendation after a refresh, and whether this call computed it."""

    stored: Recommendation | None
    """None when no checkpoint qualifies (then `decision` says why)."""
    decision: Decision | None
    """The fresh decision; None when the stored one was still current."""
    computed: bool
    explanation: tuple[str, ...] = ()
    """The fresh decision's explanation (why nothing qualifies, when nothing does)."""


def _inputs(e: CheckpointEvidence) -> dict[str, Any]:
    """A checkpoint's numbers as stored with the recommendation (verdicts summarised)."""
    wins = sum(v.score == 1.0 for v in e.votes)
    losses = sum(v.score == 0.0 for v in e.votes)
    return {
        "checkpoint_id": e.checkpoint_id,
        "label": e.label,
        "run": e.run,
        "step": e.step,
        "verdicts": {"n": len(e.votes), "wins": wins, "losses": losses,
                     "ties": len(e.votes) - wins - losses,
                     "prompts": len({v.prompt_id for v in e.votes})},
        "reward": _est(e.reward),
        "eval_reward": _est(e.eval_reward),
        "kl": _est(e.kl),
        "length_tokens": e.length_tokens,
        "kl_per_token": e.kl_per_token,
        "length_growth": e.length_growth,
        "repetition": e.repetition,
        "flags": list(e.flags),
        "train_metrics": dict(e.train_metrics),
    }  # fmt: skip


def _est(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    return {"estimate": value.estimate, "low": value.low, "high": value.high}


def fingerprint(evidence: Sequence[CheckpointEvidence], rule: RecommendationRule) -> str:
    """sha256 over the rule and every input the rule reads, verdicts included one by one."""
    payload = {
        "method": METHOD,
        "rule": rule.as_dict(),
        "checkpoints": [
            {
                **_inputs(e),
                "votes": sorted((str(v.prompt_id), v.score, v.length_diff) for v in e.votes),
            }
            for e in evidence
        ],
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def _jsonable(value: Any) -> Any:
    """Decision dataclasses as JSON (dict keys become strings, tuples lists)."""
    return json.loads(json.dumps(value, default=str))


def study_strengths(study: StudyEvidence, rule: RecommendationRule) -> dict[str, Any]:
    """Bradley-Terry strengths against the reference (log-odds, reference = 0), by label."""
    ref = study.reference.id
    votes = [
        PairVote(v.prompt_id, e.checkpoint_id, ref, v.score)
        for e in study.evidence
        for v in e.votes
    ]
    if not votes:
        return {}
    fitted = bradley_terry_intervals(votes, anchor=ref, n_boot=rule.n_boot // 2, seed=rule.seed)
    labels = {e.checkpoint_id: e.label for e in study.evidence} | {ref: study.reference.label}
    return {
        labels[s.item]: {"estimate": s.estimate, "low": s.low, "high": s.high}  # type: ignore[index]
        for s in fitted.values()
    }


def evidence_document(
    study: StudyEvidence, decision: Decision, rule: RecommendationRule, digest: str
) -> dict[str, Any]:
    """What is stored in `recommendations.evidence`: enough to audit and reproduce the choice."""
    return {
        "fingerprint": digest,
        "method": METHOD,
        "study": {"id": study.study_id, "name": study.study_name,
                  "reference": study.reference.label, "prompt_set_id": study.prompt_set_id},
        "n_judgements": study.n_judgements,
        "last_judgement_id": study.last_judgement_id,
        "rule": rule.as_dict(),
        "p_within_delta": decision.p_within_delta,
        "expected_regret": decision.expected_regret,
        "delta": rule.delta,
        "inputs": [_inputs(e) for e in study.evidence],
        "decision": _jsonable(decision.as_dict()),
        "bradley_terry": study_strengths(study, rule),
    }  # fmt: skip


def compute_recommendation(
    session: Session, study_id: int, rule: RecommendationRule | None = None
) -> tuple[StudyEvidence, Decision]:
    """Load the evidence and apply the rule (nothing stored)."""
    rule = rule or RecommendationRule()
    study = load_study_evidence(session, study_id)
    return study, recommend(study.evidence, rule)


def latest_recommendation(session: Session, study_id: int) -> Recommendation | None:
    """The newest stored recommendation of a study."""
    return session.scalar(
        select(Recommendation)
        .where(Recommendation.study_id == study_id)
        .order_by(Recommendation.created_at.desc(), Recommendation.id.desc())
        .limit(1)
    )


def recommendation_history(session: Session, study_id: int) -> list[Recommendation]:
    """Every stored recommendation of a study, oldest first."""
    return list(
        session.scalars(
            select(Recommendation)
            .where(Recommendation.study_id == study_id)
            .order_by(Recommendation.created_at, Recommendation.id)
        )
    )


def is_stale(session: Session, study_id: int, rule: RecommendationRule | None = None) -> bool:
    """True when no recommendation is stored or its inputs have changed since."""
    rule = rule or RecommendationRule()
    latest = latest_recommendation(session, study_id)
    if latest is None:
        return True
    study = load_study_evidence(session, study_id)
    return bool(latest.evidence.get("fingerprint") != fingerprint(study.evidence, rule))


def refresh_recommendation(
    session: Session,
    study_id: int,
    rule: RecommendationRule | None = None,
    *,
    force: bool = False,
) -> Refreshed:
    """Recompute and append a recommendation when the inputs changed (or when forced)."""
    rule = rule or RecommendationRule()
    study = load_study_evidence(session, study_id)
    digest = fingerprint(study.evidence, rule)
    latest = latest_recommendation(session, study_id)
    if latest is not None and not force and latest.evidence.get("fingerprint") == digest:
        return Refreshed(latest, None, computed=False)
    decision = recommend(study.evidence, rule)
    text = tuple(explain(decision, study.evidence))
    if decision.choice is None:
        return Refreshed(None, decision, computed=True, explanation=text)
    row = Recommendation(
        study_id=study_id,
        checkpoint_id=decision.choice,
        method=METHOD,
        rationale="\n".join(text),
        evidence=evidence_document(study, decision, rule, digest),
    )
    session.add(row)
    session.flush()
    return Refreshed(row, decision, computed=True, explanation=text)
