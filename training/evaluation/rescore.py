"""Score stored held-out responses with an evaluation reward model, after the fact.

An evaluation RM (one PPO never optimised) often exists only once the checkpoints are already
evaluated; regenerating 200 responses per checkpoint to get one more score would waste the
generation, the expensive part. This fills `Generation.eval_reward_score` of the shared-seed rows
(replicate 0, the ones the summary averages) and refreshes the summary.

Responses are stored as text, so the RM reads the text tokenized again plus `<|im_end|>` when
the response stopped on it: the sequence `training.sequences.scored_sequence` builds for a
sampled response whenever decoding and encoding agree (they do for ordinary text; a response
that stops mid-token may differ in its last token). Every row of an evaluation is scored by one
RM: another RM than the one recorded in the job's config rescores all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data.models import Evaluation, Generation, Prompt
from judging.evaluation.config import EvalConfig
from judging.evaluation.results import finalize, job_prompts
from training.evaluation.scoring import RewardScorer
from training.generation.base import chat_prompt_ids, load_tokenizer, model_ref_for

Progress = Callable[[int], None]


def response_ids(
    tokenizer: Any, text: str, finish_reason: str, ended_on_pad: bool = False
) -> list[int]:
    """The response's token ids as the policy would have sampled them (EOS when it stopped on
    EOS; a response ended by a sampled pad id was scored without one)."""
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    stopped = finish_reason == "stop" and not ended_on_pad
    return [*ids, int(tokenizer.eos_token_id)] if stopped else ids


def policy_tokenizer(evaluation: Evaluation) -> Any:
    """The tokenizer the evaluated checkpoint sampled with (the worker's `load_tokenizer`)."""
    checkpoint = evaluation.checkpoint
    ref = model_ref_for(checkpoint.path, checkpoint.run.base_model, checkpoint.kind)
    return load_tokenizer(ref)


def _rows(session: Session, evaluation: Evaluation, prompt_ids: Sequence[int], every: bool) -> Any:
    query = select(Generation, Prompt.text).join(Prompt, Prompt.id == Generation.prompt_id)
    query = query.where(
        Generation.checkpoint_id == evaluation.checkpoint_id,
        Generation.prompt_id.in_(list(prompt_ids)),
        Generation.replicate == 0,
    )
    if not every:
        query = query.where(Generation.eval_reward_score.is_(None))
    return session.execute(query.order_by(Generation.id)).all()


def rescore_evaluation(
    session: Session,
    evaluation: Evaluation,
    scorer: RewardScorer,
    *,
    batch_size: int = 32,
    on_batch: Progress | None = None,
) -> int:
    """Score the rows of one finished evaluation with `scorer` (committed batch by batch, so a
    stopped rescore resumes), then re-summarise it; returns how many rows were scored."""
    config = EvalConfig.model_validate(evaluation.config or {})
    every = config.eval_reward_model != scorer.path
    if every:
        evaluation.config = {**(evaluation.config or {}), "eval_reward_model": scorer.path}
        config = config.model_copy(update={"eval_reward_model": scorer.path})
    prompts = job_prompts(session, evaluation.prompt_set_id, config.limit)
    rows = _rows(session, evaluation, [p.id for p in prompts], every)
    # The policy's tokenizer, as the worker and PPO use: its chat template builds the prompt the
    # response was sampled after (a reward model may carry another template, or none).
    tokenizer = policy_tokenizer(evaluation)
    scorer.check_tokenizer(tokenizer)
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        prompt_ids = [chat_prompt_ids(tokenizer, text) for _, text in batch]
        responses = [
            response_ids(
                tokenizer,
                g.text,
                g.finish_reason,
                bool((g.diagnostics or {}).get("ended_on_pad")),
            )
            for g, _ in batch
        ]
        for (generation, _), value in zip(batch, scorer.score(prompt_ids, responses), strict=True):
            generation.eval_reward_score = value
        session.commit()
        if on_batch is not None:
            on_batch(len(batch))
    finalize(session, evaluation, prompts, config)
    session.commit()
    return len(rows)


def done_evaluations(
    session: Session, prompt_set_id: int, checkpoint_ids: Sequence[int] | None = None
) -> list[Evaluation]:
    query = select(Evaluation).where(
        Evaluation.prompt_set_id == prompt_set_id, Evaluation.status == "done"
    )
    if checkpoint_ids:
        query = query.where(Evaluation.checkpoint_id.in_(list(checkpoint_ids)))
    return list(session.scalars(query.order_by(Evaluation.checkpoint_id)))
