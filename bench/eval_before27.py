"""The worker's evaluation set-up as it was before issue 27, kept only so bench_evaluate.py can
time it against today's (`--baseline 27`). Not used by the product.

Sampling with the bf16 peft model (LoRA unmerged) asking for `logits_to_keep=1`
(`IntLogitsToKeep`), the KL teacher-forced passes at the
generation `batch_size` (64, not `score_batch_size`) and both teacher-forced passes building the
KV cache transformers makes by default (`use_cache` not given); no cut at the pad id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from training.evaluation.scoring import _batches, _inner, _right_pad, kl_estimates, kl_temperature
from training.sequences import scored_sequence


@torch.no_grad()
def response_logprobs(
    model: Any,
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    *,
    temperature: float,
    batch_size: int,
) -> list[list[float]]:
    inner = _inner(model)
    backbone = getattr(inner, inner.base_model_prefix)
    head = inner.get_output_embeddings()
    out: list[list[float]] = [[] for _ in prompts]
    seqs = [list(p) + list(r) for p, r in zip(prompts, responses, strict=True)]
    for batch in _batches([len(s) for s in seqs], batch_size):
        ids, mask = _right_pad([seqs[i] for i in batch], 0, "cpu")
        hidden = backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        rows: list[int] = []
        cols: list[int] = []
        targets: list[int] = []
        for row, i in enumerate(batch):
            start, n = len(prompts[i]) - 1, len(responses[i])
            rows += [row] * n
            cols += range(start, start + n)
            targets += list(responses[i])
        if not targets:
            continue
        logits = head(hidden[torch.tensor(rows), torch.tensor(cols)]).float() / temperature
        logps = torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(targets)[:, None])[:, 0]
        values = logps.tolist()
        at = 0
        for i in batch:
            out[i] = values[at : at + len(responses[i])]
            at += len(responses[i])
    return out


def kl(
    policy: Any,
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    *,
    temperature: float,
    batch_size: int,
) -> list[tuple[float, float]]:
    t = kl_temperature(temperature)
    mine = response_logprobs(policy, prompts, responses, temperature=t, batch_size=batch_size)
    with policy.disable_adapter():
        theirs = response_logprobs(policy, prompts, responses, temperature=t, batch_size=batch_size)
    return [kl_estimates(a, b) for a, b in zip(mine, theirs, strict=True)]


@torch.no_grad()
def rewards(
    scorer: Any, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]]
) -> list[float]:
    seqs = [scored_sequence(p, r, scorer.eos_id) for p, r in zip(prompts, responses, strict=True)]
    backbone = getattr(scorer.model, scorer.model.base_model_prefix)
    scores = [0.0] * len(seqs)
    for batch in _batches([len(s) for s in seqs], scorer.batch_size):
        ids, mask = _right_pad([seqs[i] for i in batch], scorer.pad_id, "cpu")
        hidden = backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        last = torch.tensor([len(seqs[i]) - 1 for i in batch])
        values = scorer.model.score(hidden[torch.arange(len(batch)), last]).float()[:, 0]
        for i, value in zip(batch, values.tolist(), strict=True):
            scores[i] = value
    return scores


class IntLogitsToKeep:
    """A model whose forward is always asked for `logits_to_keep=1`, as the sampling loop did
    before issue 27 (under peft the prefill's head matmul then copied its weight per row), and
    whose KV cache grows by concatenation (transformers' `DynamicCache`), as it did before the
    sampling loop preallocated it."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __call__(self, **kwargs: Any) -> Any:
        from transformers import DynamicCache

        past = kwargs.get("past_key_values")
        if past is not None and not past.layers:  # the prefill: the stock growing cache instead
            kwargs["past_key_values"] = DynamicCache()
        return self.model(**{**kwargs, "logits_to_keep": 1})

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)
