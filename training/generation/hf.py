"""The transformers backend: batched, left-padded sampling with one random generator per prompt.

`model.generate` draws every row from one global generator, so a prompt's response would depend on
its batch neighbours. This loop samples row i with its own `torch.Generator` seeded from the
prompt, so the base and each checkpoint see the same seed for the same prompt whatever the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from training.generation.base import (
    GenerationResult,
    ModelRef,
    SamplingParams,
    chat_prompt_ids,
    load_tokenizer,
    stop_token_ids,
)


def load_causal_lm(
    ref: ModelRef, *, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> Any:
    """The base model, with the LoRA adapter on top when the ref has one; eval mode."""
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(ref.base_path, dtype=dtype)
    if ref.adapter_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, ref.adapter_path)
    return model.to(device).eval()


def _choose(
    logits: torch.Tensor, params: SamplingParams, generators: list[torch.Generator]
) -> torch.Tensor:
    """Next token per row: greedy at temperature 0, else temperature + nucleus sampling."""
    if params.temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Drop a token when the mass before it already reaches top_p; the first always stays.
        drop = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= params.top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    rows = [torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(generators)]
    return torch.cat(rows)


def _left_pad(
    prompts: list[list[int]], pad_id: int, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    return ids.to(device), mask.to(device)


@torch.no_grad()
def sample_batch(
    model: Any,
    prompts: list[list[int]],
    params: SamplingParams,
    seeds: Sequence[int],
    *,
    pad_id: int,
    stops: set[int],
    device: str = "cpu",
) -> list[tuple[list[int], list[float], str]]:
    """(token ids, untempered log-probs, finish reason) per prompt, with a KV cache."""
    ids, mask = _left_pad(prompts, pad_id, device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
    tokens: list[list[int]] = [[] for _ in prompts]
    logps: list[list[float]] = [[] for _ in prompts]
    done = [False] * len(prompts)
    past = None
    for _ in range(params.max_new_tokens):
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=past,
            use_cache=True,
        )
        past = out.past_key_values
        logits = out.logits[:, -1, :].float()
        chosen = _choose(logits, params, generators)
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, chosen[:, None])[:, 0]
        for row, token in enumerate(chosen.tolist()):
            if not done[row]:
                tokens[row].append(token)
                logps[row].append(float(logprobs[row]))
                done[row] = token in stops
        if all(done):
            break
        ids = chosen[:, None]
        mask = torch.cat([mask, torch.ones_like(ids)], dim=-1)
        positions = positions[:, -1:] + 1
    return [
        (t, lp, "stop" if d else "length") for t, lp, d in zip(tokens, logps, done, strict=True)
    ]


class TransformersGenerator:
    """Base model (+ peft adapter) or a full fine-tune folder, on CPU or GPU."""

    backend = "transformers"

    def __init__(
        self,
        ref: ModelRef,
        *,
        device: str = "cpu",
        batch_size: int = 8,
        model: Any = None,
        tokenizer: Any = None,
    ) -> None:
        self.ref = ref
        self.device = device
        self.batch_size = batch_size
        self.tokenizer = tokenizer or load_tokenizer(ref)
        self.model = model if model is not None else load_causal_lm(ref, device=device)
        self.stops = stop_token_ids(self.tokenizer, getattr(self.model, "generation_config", None))

    def generate(
        self, prompts: Sequence[str], params: SamplingParams, seeds: Sequence[int]
    ) -> list[GenerationResult]:
        results: list[GenerationResult] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = [
                chat_prompt_ids(self.tokenizer, p) for p in prompts[start : start + self.batch_size]
            ]
            rows = sample_batch(
                self.model,
                chunk,
                params,
                seeds[start : start + self.batch_size],
                pad_id=int(self.tokenizer.pad_token_id),
                stops=self.stops,
                device=self.device,
            )
            results += [
                GenerationResult(self.tokenizer.decode(t, skip_special_tokens=True), t, reason, lp)
                for t, lp, reason in rows
            ]
        return results

    def close(self) -> None:
        self.model = None
