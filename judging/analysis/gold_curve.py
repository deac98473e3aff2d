"""The gold curve of a simulated study: how often the gold preference itself prefers each
checkpoint's response to the reference's, on exactly the pairs the study's raters judged.

Gold scores are stored per generation (`GoldScore`) when simulated raters fill a study; the
study page draws this curve beside the (simulated) human win rate, so one can see whether the
raters, and the recommendation built on them, tracked the truth. It is the noise-free rate: the
simulated raters' own expected rate lies nearer 0.5 (their choice noise pulls it there).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from judging.analysis.dashboard.win_rates import N_BOOT
from judging.analysis.regret import gold_preference_votes
from judging.data.models import Comparison, Generation, GoldScore, Prompt
from judging.gold import GoldScore as GoldParts
from judging.stats.winrate import Interval, win_rate_interval


def study_generations(session: Session, study_id: int) -> list[tuple[int, str, str]]:
    """(generation id, prompt text, response text) of every generation the study compares."""
    cand = (
        select(Comparison.candidate_generation_id.label("gid"))
        .where(Comparison.study_id == study_id)
        .distinct()
    )
    ref = (
        select(Comparison.reference_generation_id.label("gid"))
        .where(Comparison.study_id == study_id, Comparison.reference_generation_id.is_not(None))
        .distinct()
    )
    ids = set(session.scalars(cand)) | set(session.scalars(ref))
    rows = session.execute(
        select(Generation.id, Prompt.text, Generation.text)
        .join(Prompt, Prompt.id == Generation.prompt_id)
        .where(Generation.id.in_(ids))
        .order_by(Generation.id)
    )
    return [(gid, prompt, text) for gid, prompt, text in rows]


def store_gold_scores(session: Session, scores: Mapping[int, GoldParts], scorer: str) -> int:
    """Store (or replace) the gold score of each generation; returns how many were written."""
    if not scores:
        return 0
    existing = {
        row.generation_id: row
        for row in session.scalars(
            select(GoldScore).where(GoldScore.generation_id.in_(list(scores)))
        )
    }
    for gid, parts in scores.items():
        row = existing.get(gid) or GoldScore(generation_id=gid)
        row.scorer, row.total, row.parts = scorer, parts.total, parts.as_dict()
        session.add(row)
    session.flush()
    return len(scores)


def gold_pairs(session: Session, study_id: int) -> dict[int, list[tuple[int, float, float]]]:
    """Checkpoint id -> (prompt id, gold of its response, gold of the reference's) for every
    judged pair of the study whose two responses have gold scores by the same scorer."""
    cand, ref = aliased(GoldScore), aliased(GoldScore)
    rows = session.execute(
        select(Comparison.checkpoint_id, Comparison.prompt_id, cand.total, ref.total)
        .join(cand, cand.generation_id == Comparison.candidate_generation_id)
        .join(ref, ref.generation_id == Comparison.reference_generation_id)
        .where(
            Comparison.study_id == study_id,
            Comparison.kind == "normal",
            cand.scorer == ref.scorer,
        )
        .order_by(Comparison.checkpoint_id, Comparison.prompt_id)
    )
    out: dict[int, list[tuple[int, float, float]]] = defaultdict(list)
    for checkpoint_id, prompt_id, gold_cand, gold_ref in rows:
        out[checkpoint_id].append((prompt_id, gold_cand, gold_ref))
    return dict(out)


def gold_rates(
    session: Session, study_id: int, *, n_boot: int = N_BOOT, seed: int = 0
) -> dict[int, Interval]:
    """Checkpoint id -> gold win rate vs the reference with a prompt-clustered 95% interval;
    empty for a study without gold scores (one judged by people)."""
    out: dict[int, Interval] = {}
    for checkpoint_id, pairs in gold_pairs(session, study_id).items():
        interval = win_rate_interval(gold_preference_votes(pairs), n_boot=n_boot, seed=seed)
        if interval is not None:
            out[checkpoint_id] = interval
    return out
