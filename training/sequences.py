"""The one token sequence a reward model scores: in RM training, in PPO rollouts, in evaluation.

    chat-templated prompt with the assistant header opened   (`prompt_ids`)
    + response tokens up to and including the first EOS      (`scored_sequence`)
      (or up to, not including, the first pad id: TRL reads the score before it)

The score is read at the last token: `<|im_end|>` for a response that stopped, the last sampled
token for one cut at the token limit (no EOS is appended: TRL's PPO does not append one either).
Preference pairs are tokenised the same way with an EOS after the response text
(`text_response_ids`), as a rollout that stopped properly looks. Evaluation scores the sampled
token ids themselves, never a decode/re-encode round trip nor `apply_chat_template(tokenize=False)`
(whose text ends in `<|im_end|>\\n`, one token too far).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of a one-turn chat with the assistant turn opened (raw text without a template)."""
    if getattr(tokenizer, "chat_template", None):
        encoded = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True
        )
        ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
        return [int(i) for i in ids]
    return [int(i) for i in tokenizer(prompt)["input_ids"]]


def text_response_ids(tokenizer: Any, text: str) -> list[int]:
    """A written response as the policy would emit it: its tokens, then EOS."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [int(i) for i in ids] + [int(tokenizer.eos_token_id)]


def cut_at_eos(response: Sequence[int], eos_id: int) -> list[int]:
    """Response tokens up to and including the first EOS (all of them when there is none)."""
    out = [int(t) for t in response]
    return out[: out.index(eos_id) + 1] if eos_id in out else out


def cut_at_pad(response: Sequence[int], pad_id: int | None) -> list[int]:
    """Response tokens before the first pad id, which is not kept.

    TRL's PPO masks every pad id of a rollout (`<|endoftext|>`, id 0 here) and reads the reward at
    the token before the first one, and its KL sum stops there: a sampled pad ends the response
    PPO scored, so the evaluation ends it there too.
    """
    out = [int(t) for t in response]
    return out[: out.index(pad_id)] if pad_id is not None and pad_id in out else out


def cut_response(response: Sequence[int], eos_id: int, pad_id: int | None = None) -> list[int]:
    """What of a sampled response is scored: up to the first EOS (kept) or pad id (dropped)."""
    return cut_at_eos(cut_at_pad(response, pad_id), eos_id)


def scored_sequence(
    prompt: Sequence[int], response: Sequence[int], eos_id: int, pad_id: int | None = None
) -> list[int]:
    """What the reward model reads; its score is taken at the last position of this list."""
    return [int(t) for t in prompt] + cut_response(response, eos_id, pad_id)


def tokenizer_mismatch(mine: Any, theirs: Any) -> str | None:
    """Why two tokenizers would not give the same ids (None when they agree)."""
    if int(mine.eos_token_id) != int(theirs.eos_token_id):
        return f"EOS id {theirs.eos_token_id} != {mine.eos_token_id}"
    if len(mine) != len(theirs):
        return f"vocabulary of {len(theirs)} tokens != {len(mine)}"
    if mine.get_vocab() != theirs.get_vocab():
        return "same size but different token ids"
    return None
