"""Reward-model scores and KL(checkpoint || base) by teacher forcing, both in fp32.

KL uses the log-probs of the sampled response tokens under the checkpoint and under the base
(Schulman 2020): k1 = sum_t (logp_ckpt - logp_base), unbiased but can be negative;
k3 = sum_t ((r - 1) - log r) with r = p_base / p_ckpt, unbiased and never negative.
Log-probs are of the untempered models (as vLLM reports them), so the estimates are unbiased for
KL(ckpt || base) when responses are sampled at temperature 1 without top-p; at the usual eval
temperature they measure the same divergence on the tempered policy's samples (comparable across
checkpoints that share the sampling params, which every evaluation of a prompt set does).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from training.generation.base import PAD_TOKEN


def _right_pad(
    seqs: Sequence[Sequence[int]], pad_id: int, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(list(seq), dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids.to(device), mask.to(device)


@torch.no_grad()
def response_logprobs(
    model: Any,
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    *,
    pad_id: int,
    device: str = "cpu",
) -> list[list[float]]:
    """Log-prob of each response token given the prompt and the tokens before it (fp32)."""
    seqs = [list(p) + list(r) for p, r in zip(prompts, responses, strict=True)]
    ids, mask = _right_pad(seqs, pad_id, device)
    logits = model(input_ids=ids, attention_mask=mask).logits.float()  # (B, T, V)
    # Position t predicts token t + 1.
    logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
    out: list[list[float]] = []
    for row, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        start = len(prompt) - 1
        out.append(logps[row, start : start + len(response)].tolist())
    return out


def kl_estimates(ckpt: Sequence[float], base: Sequence[float]) -> tuple[float, float]:
    """(k1, k3) summed over the response tokens."""
    c = torch.tensor(list(ckpt), dtype=torch.float64)
    b = torch.tensor(list(base), dtype=torch.float64)
    log_r = b - c
    return float((c - b).sum()), float((log_r.exp() - 1 - log_r).sum())


class KLScorer:
    """Per-response KL of a checkpoint from its base.

    A peft model gives the base for free (`disable_adapter()`); a full fine-tune needs the base
    model loaded beside it.
    """

    def __init__(
        self,
        policy: Any,
        *,
        base: Any = None,
        pad_id: int,
        device: str = "cpu",
        batch_size: int = 8,
    ) -> None:
        self.policy = policy
        self.base = base
        self.pad_id = pad_id
        self.device = device
        self.batch_size = batch_size

    def _base_context(self) -> AbstractContextManager[Any]:
        if self.base is None:
            return self.policy.disable_adapter()  # type: ignore[no-any-return]
        return nullcontext()

    def score(
        self, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]]
    ) -> list[tuple[float, float]]:
        results: list[tuple[float, float]] = []
        for start in range(0, len(prompts), self.batch_size):
            p = prompts[start : start + self.batch_size]
            r = responses[start : start + self.batch_size]
            mine = response_logprobs(self.policy, p, r, pad_id=self.pad_id, device=self.device)
            with self._base_context():
                model = self.base if self.base is not None else self.policy
                theirs = response_logprobs(model, p, r, pad_id=self.pad_id, device=self.device)
            results += [kl_estimates(a, b) for a, b in zip(mine, theirs, strict=True)]
        return results


class RewardScorer:
    """A sequence-classification reward model (num_labels=1) scoring prompt + response."""

    def __init__(self, path: str, *, device: str = "cpu", batch_size: int = 16) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if PAD_TOKEN in self.tokenizer.get_vocab():
            self.tokenizer.pad_token = PAD_TOKEN
        elif self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "right"
        model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model = model.to(device).eval()
        self.device = device
        self.batch_size = batch_size

    def _text(self, prompt: str, response: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            messages = [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": response},
            ]
            return str(self.tokenizer.apply_chat_template(messages, tokenize=False))
        return f"{prompt}\n\n{response}"

    @torch.no_grad()
    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        texts = [self._text(p, r) for p, r in zip(prompts, responses, strict=True)]
        scores: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                texts[start : start + self.batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=2048,
            ).to(self.device)
            scores += self.model(**batch).logits[:, 0].float().tolist()
        return scores
