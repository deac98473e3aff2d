"""Per-prompt views: tallies by prompt and one prompt's responses and verdicts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.analysis.dashboard.studies import StudyInfo
from judging.analysis.dashboard.votes import VoteRow
from judging.analysis.dashboard.win_rates import verdicts
from judging.data.models import (
    Assignment,
    Checkpoint,
    Comparison,
    Generation,
    Judgement,
    Prompt,
    PromptSet,
    Rater,
    Study,
    TrainingRun,
)
from judging.data.overview import checkpoint_label
from judging.errors import NotFoundError
from judging.stats.agreement import winner as resolve_winner
from judging.studies.counting import counted_verdict


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
