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
from judging.evaluation.results import (
    Scorers,
    finalize,
    job_prompts,
    row_scorers,
    stored_config_scorers,
    train_response_length,
)
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


ROLES = {
    "reward": ("reward_score", "reward_at_train_length", "reward_model", "reward_dtype"),
    "eval_reward": (
        "eval_reward_score",
        "eval_reward_at_train_length",
        "eval_reward_model",
        "eval_reward_dtype",
    ),
}
"""Which columns a reward model of each role fills, and its fields in `scored_by`."""


def _rows(
    session: Session, evaluation: Evaluation, prompt_ids: Sequence[int], role: str, want: Scorers
) -> list[Any]:
    """Replicate-0 rows (the ones summaries and the resume check read) not yet scored by `want`
    in `role`: no score, or one from another model or dtype."""
    score_col, _, model_field, dtype_field = ROLES[role]
    query = select(Generation, Prompt.text).join(Prompt, Prompt.id == Generation.prompt_id)
    query = query.where(
        Generation.checkpoint_id == evaluation.checkpoint_id,
        Generation.prompt_id.in_(list(prompt_ids)),
        Generation.replicate == 0,
    )
    legacy = stored_config_scorers(evaluation)
    rows = session.execute(query.order_by(Generation.id)).all()
    target = (getattr(want, model_field), getattr(want, dtype_field))
    return [
        (g, text)
        for g, text in rows
        if getattr(g, score_col) is None
        or (
            getattr(row_scorers(g.scored_by, legacy), model_field),
            getattr(row_scorers(g.scored_by, legacy), dtype_field),
        )
        != target
    ]


def rescore_evaluation(
    session: Session,
    evaluation: Evaluation,
    scorer: RewardScorer,
    *,
    role: str = "eval_reward",
    batch_size: int = 32,
    on_batch: Progress | None = None,
) -> int:
    """Score the rows of one evaluation with `scorer` in `role` ("eval_reward" or "reward"),
    committed batch by batch (a stopped rescore resumes), each row's `scored_by` updated; then
    re-summarise it if it was finished. Returns how many rows were scored.

    An unfinished job (a resume refused because its rows were scored by other models) is
    rescored too: its config then names `scorer`, and `rlhf evaluate` goes on with it.
    """
    score_col, short_col, model_field, dtype_field = ROLES[role]
    config = EvalConfig.model_validate(evaluation.config or {})
    legacy = stored_config_scorers(evaluation)
    current = {model_field: scorer.path, dtype_field: scorer.dtype_name}
    want = Scorers.of({**legacy.as_dict(), **current})
    config_field = "reward_model" if role == "reward" else "eval_reward_model"
    evaluation.config = {
        **(evaluation.config or {}),
        config_field: scorer.path,
        "reward_dtype": scorer.dtype_name,
    }
    config = config.model_copy(update={config_field: scorer.path})
    prompts = job_prompts(session, evaluation.prompt_set_id, config.limit)
    rows = _rows(session, evaluation, [p.id for p in prompts], role, want)
    length = train_response_length(evaluation.checkpoint.run)
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
        full, short = scorer.score_at(prompt_ids, responses, length)
        for (generation, _), value, value_short in zip(batch, full, short, strict=True):
            setattr(generation, score_col, value)
            setattr(generation, short_col, value_short)
            base = row_scorers(generation.scored_by, legacy).as_dict()
            generation.scored_by = {**base, **current}
        session.commit()
        if on_batch is not None:
            on_batch(len(batch))
    if evaluation.status == "done":
        finalize(session, evaluation, prompts, config)
    session.commit()
    return len(rows)


def done_evaluations(
    session: Session,
    prompt_set_id: int,
    checkpoint_ids: Sequence[int] | None = None,
    *,
    unfinished: bool = False,
) -> list[Evaluation]:
    """Finished evaluations of the set; with `unfinished`, also pending or failed ones (a
    refused resume's rows are reconciled before it goes on). Running jobs are never touched."""
    statuses = ("done", "pending", "failed") if unfinished else ("done",)
    query = select(Evaluation).where(
        Evaluation.prompt_set_id == prompt_set_id, Evaluation.status.in_(statuses)
    )
    if checkpoint_ids:
        query = query.where(Evaluation.checkpoint_id.in_(list(checkpoint_ids)))
    return list(session.scalars(query.order_by(Evaluation.checkpoint_id)))
