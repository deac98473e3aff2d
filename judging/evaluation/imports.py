"""Attach externally generated responses (JSONL) to a checkpoint, without any model.

Every line is validated before anything is written: a bad line is an InputFileError naming it and
the database is left untouched. Imported rows have backend "import", no KL (no token log-probs)
and the reward given in the file, if any.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data.models import FINISH_REASONS, Evaluation, Generation, Prompt
from judging.data.prompts import jsonl_rows, text_hash
from judging.data.registry import get_checkpoint
from judging.errors import ConflictError, InputFileError
from judging.evaluation.config import EvalConfig
from judging.evaluation.results import (
    NewGeneration,
    Scorers,
    finalize,
    job_prompts,
    prompt_seed,
    store_generations,
)


@dataclass(frozen=True)
class ImportedResponse:
    line: int
    prompt: Prompt
    response: str
    reward: float | None
    finish_reason: str


def _prompt_for(
    row: dict[str, Any],
    by_id: dict[str, Prompt],
    by_hash: dict[str, Prompt],
    where: tuple[str, int],
) -> Prompt:
    if "prompt_id" in row:
        prompt = by_id.get(str(row["prompt_id"]))
        if prompt is None:
            raise InputFileError(*where, f"prompt_id {row['prompt_id']!r} is not in the prompt set")
        return prompt
    if isinstance(row.get("prompt"), str):
        prompt = by_hash.get(text_hash(row["prompt"]))
        if prompt is None:
            raise InputFileError(*where, "prompt text is not in the prompt set")
        return prompt
    raise InputFileError(*where, "needs 'prompt_id' or 'prompt'")


def _response(row: dict[str, Any], prompt: Prompt, where: tuple[str, int]) -> ImportedResponse:
    response = row.get("response")
    if not isinstance(response, str):
        raise InputFileError(*where, "'response' must be a string")
    reward = row.get("reward")
    if reward is not None and (
        isinstance(reward, bool) or not isinstance(reward, int | float) or not math.isfinite(reward)
    ):
        raise InputFileError(*where, "'reward' must be a finite number")
    finish = row.get("finish_reason", "stop")
    if finish not in FINISH_REASONS:
        raise InputFileError(*where, f"'finish_reason' must be one of {', '.join(FINISH_REASONS)}")
    return ImportedResponse(
        where[1], prompt, response, None if reward is None else float(reward), finish
    )


def parse_generations_file(path: Path, prompts: list[Prompt]) -> list[ImportedResponse]:
    """Every line of the file checked against the prompt set; one response per prompt."""
    name = str(path)
    if not path.is_file():
        raise InputFileError(name, None, "file does not exist")
    by_id = {p.external_id: p for p in prompts}
    by_hash = {p.text_hash: p for p in prompts}
    seen: dict[int, int] = {}
    out: list[ImportedResponse] = []
    for number, row in jsonl_rows(name, path.read_text(encoding="utf-8")):
        item = _response(row, _prompt_for(row, by_id, by_hash, (name, number)), (name, number))
        if item.prompt.id in seen:
            raise InputFileError(
                name, number, f"second response to the prompt of line {seen[item.prompt.id]}"
            )
        seen[item.prompt.id] = number
        out.append(item)
    if not out:
        raise InputFileError(name, None, "no responses found")
    return out


def _refuse_duplicates(
    session: Session, path: Path, checkpoint_id: int, items: list[ImportedResponse]
) -> None:
    query = select(Generation.prompt_id).where(Generation.checkpoint_id == checkpoint_id)
    existing = set(session.scalars(query))
    clash = next((i for i in items if i.prompt.id in existing), None)
    if clash is not None:
        raise ConflictError(
            f"{path}:{clash.line}: checkpoint {checkpoint_id} already has a response to "
            f"prompt {clash.prompt.external_id!r}"
        )


def _evaluation(session: Session, checkpoint_id: int, prompt_set_id: int) -> Evaluation:
    """The checkpoint's evaluation row on the set, created if missing (any run kind)."""
    evaluation = session.scalar(
        select(Evaluation).where(
            Evaluation.checkpoint_id == checkpoint_id, Evaluation.prompt_set_id == prompt_set_id
        )
    )
    if evaluation is None:
        evaluation = Evaluation(checkpoint_id=checkpoint_id, prompt_set_id=prompt_set_id)
        session.add(evaluation)
        session.flush()
    return evaluation


def attach_responses(
    session: Session,
    *,
    checkpoint_id: int,
    prompt_set_id: int,
    prompts: list[Prompt],
    items: list[NewGeneration],
    backend: str,
    model_ref: str,
    sampling_params: dict[str, Any],
    config: EvalConfig,
    scorers: Scorers | None = None,
    job_config: dict[str, Any] | None = None,
) -> Evaluation:
    """Store responses made elsewhere for a checkpoint and (re)summarise its evaluation on the
    set: the one path of `rlhf import generations` and `rlhf ladder import`. `job_config` goes
    updates the evaluation's config (the reward model and dtype that scored the rows, which
    `rlhf rescore` and the summary read)."""
    store_generations(
        session,
        checkpoint_id=checkpoint_id,
        items=items,
        backend=backend,
        model_ref=model_ref,
        sampling_params=sampling_params,
        config=config,
        scorers=scorers,
    )
    evaluation = _evaluation(session, checkpoint_id, prompt_set_id)
    # A whole EvalConfig, as the worker stores it: `rlhf rescore` reads it back (a dict of
    # backend and source made it refuse every imported evaluation). Where the rows came from is
    # on each row (backend, model_ref).
    evaluation.config = config.model_copy(update=job_config or {}).model_dump(mode="json")
    # Coverage in the summary tells how much of the set the responses answered.
    finalize(session, evaluation, prompts, config)
    return evaluation


def import_generations(
    session: Session, *, path: Path, checkpoint_id: int, prompt_set_id: int, config: EvalConfig
) -> Evaluation:
    """Store the file's responses and (re)summarise the checkpoint's evaluation on this set."""
    checkpoint = get_checkpoint(session, checkpoint_id)
    prompts = job_prompts(session, prompt_set_id)
    items = parse_generations_file(path, prompts)
    _refuse_duplicates(session, path, checkpoint.id, items)
    rows = [
        # No tokenizer here: token_count of an imported response counts whitespace words.
        NewGeneration(
            i.prompt.id,
            prompt_seed(config, i.prompt),
            i.response,
            len(i.response.split()),
            i.finish_reason,
            i.reward,
        )
        for i in items
    ]
    return attach_responses(
        session,
        checkpoint_id=checkpoint.id,
        prompt_set_id=prompt_set_id,
        prompts=prompts,
        items=rows,
        backend="import",
        model_ref=str(path),
        sampling_params={},
        config=config,
    )
