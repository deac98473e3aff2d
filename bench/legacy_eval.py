"""The evaluation path as it was before issue 8, kept only so bench_evaluate.py can time it.

Generation in batches of 8 with full-vocabulary logits on every prompt position and a full sort
for top-p, untempered sampled log-probs, a second teacher-forced pass of the checkpoint for KL
(untempered, full logits), and the reward model on re-encoded chat text at batch 16 (score read
at the `\\n` after `<|im_end|>`). Not used by the product.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from training.generation.base import SamplingParams


def _choose(
    logits: torch.Tensor, params: SamplingParams, generators: list[torch.Generator]
) -> torch.Tensor:
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        drop = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= params.top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    rows = [torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(generators)]
    return torch.cat(rows)


@torch.no_grad()
def sample_batch(
    model: Any,
    prompts: list[list[int]],
    params: SamplingParams,
    seeds: Sequence[int],
    *,
    pad_id: int,
    stops: set[int],
) -> list[tuple[list[int], list[float], str]]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
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


@torch.no_grad()
def response_logprobs(
    model: Any, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int
) -> list[list[float]]:
    seqs = [list(p) + list(r) for p, r in zip(prompts, responses, strict=True)]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    logits = model(input_ids=ids, attention_mask=mask).logits.float()  # (B, T, V)
    logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
    return [
        logps[row, len(p) - 1 : len(p) - 1 + len(r)].tolist()
        for row, (p, r) in enumerate(zip(prompts, responses, strict=True))
    ]


def kl_pairs(
    policy: Any,
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    pad_id: int,
    batch: int = 8,
) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for start in range(0, len(prompts), batch):
        p, r = prompts[start : start + batch], responses[start : start + batch]
        mine = response_logprobs(policy, p, r, pad_id)
        with policy.disable_adapter():
            theirs = response_logprobs(policy, p, r, pad_id)
        for a, b in zip(mine, theirs, strict=True):
            c, d = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
            log_r = d - c
            out.append((float((c - d).sum()), float((log_r.exp() - 1 - log_r).sum())))
    return out


@torch.no_grad()
def text_rewards(
    model: Any, tokenizer: Any, prompts: Sequence[str], responses: Sequence[str], batch: int = 16
) -> list[float]:
    texts = [
        str(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}, {"role": "assistant", "content": r}],
                tokenize=False,
            )
        )
        for p, r in zip(prompts, responses, strict=True)
    ]
    tokenizer.padding_side = "right"
    scores: list[float] = []
    for start in range(0, len(texts), batch):
        enc = tokenizer(texts[start : start + batch], return_tensors="pt", padding=True)
        scores += model(**enc).logits[:, 0].float().tolist()
    return scores
