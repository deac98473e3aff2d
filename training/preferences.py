"""Preference pairs (prompt, chosen, rejected): loading, filtering and tokenisation.

Reward-model inputs are built by `training.sequences.scored_sequence`, the function PPO scoring
and checkpoint evaluation share: the chat-templated prompt with the assistant header, then the
response tokens, then EOS (`<|im_end|>`), so the score is read at the same token everywhere.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from judging.errors import ConfigError, InputFileError
from training.common import chat_prompt_ids, read_jsonl
from training.config import TrainConfig
from training.sequences import scored_sequence, text_response_ids

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def load_pairs(cfg: TrainConfig, path: str, required: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows of the local JSONL (or hub dataset, needs internet), capped by max_samples."""
    if cfg.data.hub_dataset:  # never exercised offline
        from datasets import load_dataset

        rows = [dict(r) for r in load_dataset(cfg.data.hub_dataset, split=cfg.data.hub_split)]
    else:
        rows = read_jsonl(Path(path), required)
    if cfg.data.max_samples:
        rows = rows[: cfg.data.max_samples]
    return rows


PAIR_HALVES = ("all", "first", "second")


def pair_half(rows: list[dict[str, Any]], half: str) -> list[dict[str, Any]]:
    """The rows of one half of the pairs; a prompt's pairs always land in the same half."""
    if half not in PAIR_HALVES:
        raise ConfigError(f"'rm.pair_half' must be one of {', '.join(PAIR_HALVES)}, not {half!r}")
    if half == "all":
        return rows
    want = 0 if half == "first" else 1
    return [
        row for row in rows if hashlib.sha256(str(row["prompt"]).encode()).digest()[0] % 2 == want
    ]


def response_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Response tokens followed by EOS, as a PPO rollout that stopped properly looks."""
    return text_response_ids(tokenizer, text)


def tokenize_pairs(
    rows: list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> dict[str, list[Any]]:
    """chosen_ids / rejected_ids plus response lengths; pairs longer than max_length are dropped."""
    out: dict[str, list[Any]] = {
        "chosen_ids": [],
        "rejected_ids": [],
        "chosen_len": [],
        "rejected_len": [],
    }
    for row in rows:
        prompt = chat_prompt_ids(tokenizer, row["prompt"])
        chosen = response_ids(tokenizer, row["chosen"])
        rejected = response_ids(tokenizer, row["rejected"])
        if len(prompt) + max(len(chosen), len(rejected)) > max_length:
            continue
        eos = int(tokenizer.eos_token_id)
        out["chosen_ids"].append(scored_sequence(prompt, chosen, eos))
        out["rejected_ids"].append(scored_sequence(prompt, rejected, eos))
        out["chosen_len"].append(len(chosen))
        out["rejected_len"].append(len(rejected))
    if not out["chosen_ids"]:
        raise InputFileError("preferences", None, f"no pair fits 'data.max_length' = {max_length}")
    return out


def conversational(
    rows: list[dict[str, Any]], response_key: str | None = None
) -> list[dict[str, Any]]:
    """TRL's conversational format: prompt as a user turn, responses as assistant turns."""
    converted = []
    for row in rows:
        item: dict[str, Any] = {"prompt": [{"role": "user", "content": row["prompt"]}]}
        if response_key is not None:
            item["completion"] = [{"role": "assistant", "content": row[response_key]}]
        else:
            item["chosen"] = [{"role": "assistant", "content": row["chosen"]}]
            item["rejected"] = [{"role": "assistant", "content": row["rejected"]}]
        converted.append(item)
    return converted
