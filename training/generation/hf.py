"""The transformers backend: batched, left-padded sampling with one random generator per prompt.

`model.generate` draws every row from one global generator, so a prompt's response would depend on
its batch neighbours. This loop samples row i with its own `torch.Generator` seeded from the
prompt, so the base and each checkpoint see the same seed for the same prompt whatever the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from judging.errors import NotFoundError
from training.generation.attention import register as register_attention
from training.generation.base import (
    GenerationResult,
    ModelRef,
    SamplingParams,
    chat_prompt_ids,
    load_tokenizer,
    stop_token_ids,
)
from training.generation.kv_cache import preallocated_cache


def load_causal_lm(
    ref: ModelRef, *, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> Any:
    """The base model, with the LoRA adapter on top when the ref has one; eval mode."""
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(
        ref.base_path, dtype=dtype, attn_implementation=register_attention()
    )
    if ref.adapter_path:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, ref.adapter_path)
        except Exception as exc:  # peft/safetensors raise many types for a damaged folder
            lines = str(exc).strip().splitlines()
            why = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
            raise NotFoundError(f"adapter {ref.adapter_path} cannot be loaded ({why})") from None
    return model.to(device).eval()


def nucleus_probs(probs: torch.Tensor, top_p: float, candidates: int = 256) -> torch.Tensor:
    """Zero every token outside the top-p nucleus (not renormalised; multinomial does not need it).

    probs: (B, V). A token is kept while the mass strictly before it is below top_p; the first
    always stays. Sorting all V tokens per step is the slow part, so the nucleus is looked for in
    the `candidates` most likely tokens first and rows whose nucleus is wider fall back to a sort.
    """
    k = min(candidates, probs.shape[-1])
    top, order = probs.topk(k, dim=-1)  # (B, k) descending
    keep = (top.cumsum(dim=-1) - top) < top_p  # (B, k)
    wide = keep[:, -1] & (top.sum(dim=-1) < top_p)  # nucleus may reach beyond k
    out = torch.zeros_like(probs).scatter(-1, order, top * keep)
    if bool(wide.any()):
        rows = wide.nonzero()[:, 0]
        sorted_probs, full_order = probs[rows].sort(dim=-1, descending=True)
        drop = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= top_p
        out[rows] = torch.zeros_like(sorted_probs).scatter(
            -1, full_order, sorted_probs.masked_fill(drop, 0.0)
        )
    return out


_BLOCK = 256


def inverse_cdf_sample(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index i of each row with cdf[i - 1] <= u * total < cdf[i]: a draw from `probs`.

    probs: (B, V) non-negative, not necessarily normalised; u: (B,) uniform in [0, 1), float64.
    `torch.multinomial` per row was 14% of generation at batch 96 (one call per row because each row
    has its own generator); this is one vectorised pass: the mass of each block of 256 tokens, then
    the cumulative sum inside the chosen block only. A zero-probability token is never returned.
    """
    rows, vocab = probs.shape
    pad = (-vocab) % _BLOCK
    padded = torch.nn.functional.pad(probs, (0, pad)) if pad else probs
    blocks = padded.view(rows, -1, _BLOCK)  # (B, NB, 256)
    mass = blocks.sum(dim=-1, dtype=torch.float64)  # (B, NB)
    cdf = mass.cumsum(dim=-1)  # (B, NB)
    target = u * cdf[:, -1]  # (B,)
    last_block = (cdf < cdf[:, -1:]).sum(dim=-1)  # the last block with mass
    block = torch.searchsorted(cdf, target[:, None], right=True)[:, 0].minimum(last_block)
    before = cdf.gather(-1, block[:, None])[:, 0] - mass.gather(-1, block[:, None])[:, 0]
    inside = blocks[torch.arange(rows), block].to(torch.float64).cumsum(dim=-1)  # (B, 256)
    last_token = (inside < inside[:, -1:]).sum(dim=-1)  # rounding never picks a zero after it
    offset = torch.searchsorted(inside, (target - before)[:, None], right=True)[:, 0]
    return block * _BLOCK + offset.minimum(last_token)


def _choose(
    logits: torch.Tensor, params: SamplingParams, generators: Sequence[torch.Generator]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(next token, its log-prob under the tempered distribution) per row.

    logits: (B, V) in fp32. Greedy at temperature 0 (log-probs then of the untempered model).
    Row i draws its uniform from its own generator, so its sample never depends on its batch
    neighbours.
    """
    if params.temperature == 0:
        chosen = logits.argmax(dim=-1)
        return chosen, torch.log_softmax(logits, dim=-1).gather(-1, chosen[:, None])[:, 0]
    logps = torch.log_softmax(logits / params.temperature, dim=-1)  # (B, V)
    probs = logps.exp()
    if params.top_p < 1.0:
        probs = nucleus_probs(probs, params.top_p)
    u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in generators])  # (B,)
    chosen = inverse_cdf_sample(probs, u.to(probs.device))
    return chosen, logps.gather(-1, chosen[:, None])[:, 0]


def _left_pad(
    prompts: Sequence[Sequence[int]], pad_id: int, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(list(prompt))
        mask[row, width - len(prompt) :] = 1
    return ids.to(device), mask.to(device)


@torch.no_grad()
def sample_batch(
    model: Any,
    prompts: Sequence[Sequence[int]],
    params: SamplingParams,
    seeds: Sequence[int],
    *,
    pad_id: int,
    stops: set[int],
    device: str = "cpu",
    ends: set[int] | frozenset[int] = frozenset(),
) -> list[tuple[list[int], list[float], str]]:
    """(token ids, tempered log-probs, finish reason) per prompt, with a KV cache.

    A token in `stops` (EOS) ends its row and is kept ("stop"); one in `ends` (the pad id: TRL
    reads the reward before it and masks it from KL) ends its row and is dropped ("pad").

    Finished rows leave the batch (their KV cache rows are dropped), the KV cache is written in
    place (`kv_cache.preallocated_cache`), and the prompt's forward pass computes logits at its
    last position only: the full-vocabulary projection of every prompt position was a fifth of
    the old cost.
    """
    ids, mask = _left_pad(prompts, pad_id, device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
    tokens: list[list[int]] = [[] for _ in prompts]
    logps: list[list[float]] = [[] for _ in prompts]
    done = [False] * len(prompts)
    ended = [False] * len(prompts)
    active = list(range(len(prompts)))  # original row of each batch row
    # Written in place, growing by doubling up to the prompt plus every new token: no copy of
    # the whole cache per step.
    past = preallocated_cache(ids.shape[1] + params.max_new_tokens)
    for _ in range(params.max_new_tokens):
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=past,
            use_cache=True,
            # The last position as an index tensor, not `1`: the int slices (B, T, H) into a
            # non-contiguous (B, 1, H) view, and under peft the head's matmul then broadcast its
            # (H, V) weight to (B, H, V) and copied it (1.8 GB in bf16 at batch 32: 11 of 14 CPU s
            # of a prefill, profiled). The index copies the (B, 1, H) rows instead.
            logits_to_keep=torch.tensor([ids.shape[1] - 1], device=ids.device),
        )
        past = out.past_key_values
        chosen, chosen_logps = _choose(
            out.logits[:, -1, :].float(), params, [generators[r] for r in active]
        )
        keep: list[int] = []
        for pos, (row, token, logp) in enumerate(
            zip(active, chosen.tolist(), chosen_logps.tolist(), strict=True)
        ):
            if token in ends:
                done[row] = ended[row] = True
                continue
            tokens[row].append(token)
            logps[row].append(logp)
            done[row] = token in stops
            if not done[row]:
                keep.append(pos)
        if not keep:
            break
        if len(keep) < len(active):
            index = torch.tensor(keep, device=ids.device)
            past.batch_select_indices(index)
            chosen, mask, positions = chosen[index], mask[index], positions[index]
            active = [active[p] for p in keep]
        ids = chosen[:, None]
        mask = torch.cat([mask, torch.ones_like(ids)], dim=-1)
        positions = positions[:, -1:] + 1
    return [
        (t, lp, "pad" if e else "stop" if d else "length")
        for t, lp, d, e in zip(tokens, logps, done, ended, strict=True)
    ]


class TransformersGenerator:
    """Base model (+ peft adapter) or a full fine-tune folder, on CPU or GPU.

    Prompts are sorted by length before batching (little left padding); results come back in the
    caller's order. `logprobs_exact` says whether the returned log-probs are fp32-accurate
    log-probs of the sampling distribution (KL then reuses them instead of a second pass).
    """

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
        self.logprobs_exact = next(self.model.parameters()).dtype == torch.float32

    def generate(
        self, prompts: Sequence[str], params: SamplingParams, seeds: Sequence[int]
    ) -> list[GenerationResult]:
        encoded = [chat_prompt_ids(self.tokenizer, p) for p in prompts]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        results: dict[int, GenerationResult] = {}
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            rows = sample_batch(
                self.model,
                [encoded[i] for i in chunk],
                params,
                [seeds[i] for i in chunk],
                pad_id=int(self.tokenizer.pad_token_id),
                stops=self.stops,
                device=self.device,
                ends={int(self.tokenizer.pad_token_id)} - self.stops,
            )
            for i, (t, lp, reason) in zip(chunk, rows, strict=True):
                text = self.tokenizer.decode(t, skip_special_tokens=True)
                results[i] = GenerationResult(text, t, reason, lp)
        return [results[i] for i in range(len(encoded))]

    def close(self) -> None:
        self.model = None
