"""Reward-model scores and KL(checkpoint || base) of the sampling distributions, in fp32.

Reward: the reward model reads `training.sequences.scored_sequence(prompt ids, response ids)`,
the very sequence it was trained on and PPO scored, and the score is taken at its last token
(`<|im_end|>`, or the last sampled token of a truncated response; no EOS is appended).

KL: responses are sampled from the checkpoint at temperature T, so the divergence that means
something is KL(pi_T || base_T) between the two *tempered* distributions (TRL's `objective/kl`
divides both policies' logits by T too). Per token, with r = base_T(y_t) / pi_T(y_t) (Schulman
2020):

    k1 = sum_t -log r            unbiased, can be negative on a sample
    k3 = sum_t (r - 1) - log r   unbiased, never negative, lower variance

Both are unbiased for the sequence-level KL only when the responses are drawn from pi_T itself,
i.e. with top-p = 1 (the evaluation default). With top-p < 1 the samples come from the truncated
nucleus distribution instead: the figures are then the tempered distributions' log-ratio averaged
over nucleus samples, which is neither KL of the nucleus distributions (infinite as soon as the
base's nucleus misses a sampled token) nor unbiased for KL(pi_T || base_T); the summary marks them
`kl_exact: false`. At temperature 0 (greedy) log-probs are those of the untempered models.

Only response positions go through the vocabulary projection: the backbone runs on prompt +
response and `lm_head` on the hidden states that predict response tokens.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from judging.errors import ConfigError
from training.generation.attention import register as register_attention
from training.generation.base import PAD_TOKEN
from training.sequences import cut_at_pad, scored_sequence, tokenizer_mismatch


def kl_temperature(temperature: float) -> float:
    """The temperature both log-prob sides are computed at (1 for greedy decoding)."""
    return temperature if temperature > 0 else 1.0


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


def _batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices in batches of similar length (less padding), longest first."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _inner(model: Any) -> Any:
    """The transformers model under a peft wrapper (LoRA layers stay in place and obey it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@torch.no_grad()
def response_logprobs(
    model: Any,
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    *,
    pad_id: int,
    temperature: float = 1.0,
    device: str = "cpu",
    batch_size: int = 16,
    cache: PromptCache | None = None,
) -> list[list[float]]:
    """Log-prob of each response token at `temperature` given the prompt and the tokens before.

    With `cache` (a frozen model's prompt prefixes: its KV and last hidden state), only the
    response tokens run through, all but the last, whose output predicts nothing scored."""
    inner = _inner(model)
    backbone = getattr(inner, inner.base_model_prefix)
    head = inner.get_output_embeddings()
    out: list[list[float]] = [[] for _ in prompts]
    if cache is not None:
        todo = [i for i, r in enumerate(responses) if len(r) > 0]
        for chunk, states in cached_hidden(
            backbone, cache, [prompts[i] for i in todo], [list(responses[i])[:-1] for i in todo],
            pad_id=pad_id, device=device, batch_size=batch_size,
            config=getattr(inner, "config", None),
        ):  # fmt: skip
            batch = [todo[j] for j in chunk]
            picked = torch.cat(states)  # (N, H): row j of response i predicts its token j
            _read_logprobs(head, picked, batch, responses, temperature, out)
        return out
    seqs = [list(p) + list(r) for p, r in zip(prompts, responses, strict=True)]
    for batch in _batches([len(s) for s in seqs], batch_size):
        ids, mask = _right_pad([seqs[i] for i in batch], pad_id, device)
        # use_cache=False: transformers builds a KV cache by default that a teacher-forced pass
        # never reads (~1.9 GB at 64 x 656 tokens).
        hidden = backbone(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        # Position t predicts token t + 1: the response's tokens sit at len(prompt) ... and are
        # predicted from len(prompt) - 1 ... len(seq) - 2.
        rows: list[int] = []
        cols: list[int] = []
        for row, i in enumerate(batch):
            start, n = len(prompts[i]) - 1, len(responses[i])
            rows += [row] * n
            cols += range(start, start + n)
        if not rows:
            continue
        picked = hidden[torch.tensor(rows), torch.tensor(cols)]  # (N, H)
        _read_logprobs(head, picked, batch, responses, temperature, out)
    return out


def _read_logprobs(
    head: Any,
    picked: torch.Tensor,
    batch: Sequence[int],
    responses: Sequence[Sequence[int]],
    temperature: float,
    out: list[list[float]],
) -> None:
    """Each response's token log-probs at `temperature` into `out`, from `picked` (N, H): the
    hidden states that predict the batch's response tokens, response after response."""
    targets = torch.tensor([int(t) for i in batch for t in responses[i]])  # (N,)
    logits = head(picked).float() / temperature  # (N, V)
    logps = torch.log_softmax(logits, dim=-1).gather(-1, targets[:, None])[:, 0].tolist()
    at = 0
    for i in batch:
        out[i] = logps[at : at + len(responses[i])]
        at += len(responses[i])


def kl_estimates(ckpt: Sequence[float], base: Sequence[float]) -> tuple[float, float]:
    """(k1, k3) summed over the response tokens from per-token log-probs of both sides."""
    c = torch.tensor(list(ckpt), dtype=torch.float64)
    b = torch.tensor(list(base), dtype=torch.float64)
    log_r = b - c
    return float((c - b).sum()), float((log_r.exp() - 1 - log_r).sum())


class KLScorer:
    """Per-response KL of a checkpoint from its base, both at the sampling temperature, in fp32.

    A peft model gives the base for free (`disable_adapter()`); a full fine-tune needs the base
    model loaded beside it. When the generator's sampled log-probs are exact (fp32 transformers
    sampling), the checkpoint side reuses them and only the base runs a teacher-forced pass.
    """

    def __init__(
        self,
        policy: Any,
        *,
        base: Any = None,
        pad_id: int,
        device: str = "cpu",
        batch_size: int = 16,
        end_id: int | None = None,
        base_cache: PromptCache | None = None,
        merge: bool = False,
    ) -> None:
        self.policy = policy
        self.merge = merge
        """Run the checkpoint's own teacher-forced pass on a copy with its LoRA merged."""
        self._checkpoint: Any = None
        self.base_cache = base_cache
        """The base's per-prompt KV and last hidden state, shared by a run's checkpoints."""
        self.base = base
        self.pad_id = pad_id
        self.end_id = end_id
        """A sampled id that ends a response and is not part of it: the pad id for TRL-trained
        policies (None: every token counts, e.g. a toy vocabulary whose pad can be drawn)."""
        self.device = device
        self.batch_size = batch_size

    def _checkpoint_model(self) -> Any:
        """The model of the checkpoint's own teacher-forced pass. With `merge`, a LoRA policy's
        adapter is merged into a copy once per scorer: plain fp32 linear layers instead of
        peft's extra matmuls, scaling and adds in every adapted module, equal to the unmerged
        pass up to fp32 rounding (tests/training/test_evaluation_generation.py). The policy
        itself stays unmerged: its `disable_adapter()` is the base pass."""
        if self._checkpoint is None:
            mergeable = self.merge and hasattr(self.policy, "merge_and_unload")
            self._checkpoint = (
                copy.deepcopy(self.policy).merge_and_unload().eval() if mergeable else self.policy
            )
        return self._checkpoint

    def _base_context(self) -> AbstractContextManager[Any]:
        if self.base is None:
            return self.policy.disable_adapter()  # type: ignore[no-any-return]
        return nullcontext()

    def _logprobs(
        self,
        model: Any,
        prompts: Sequence[Sequence[int]],
        responses: Sequence[Sequence[int]],
        t: float,
        cache: PromptCache | None = None,
    ) -> list[list[float]]:
        return response_logprobs(
            model,
            prompts,
            responses,
            pad_id=self.pad_id,
            temperature=t,
            device=self.device,
            batch_size=self.batch_size,
            cache=cache,
        )

    def score(
        self,
        prompts: Sequence[Sequence[int]],
        responses: Sequence[Sequence[int]],
        *,
        temperature: float = 1.0,
        sampled: Sequence[Sequence[float]] | None = None,
    ) -> list[tuple[float, float]]:
        t = kl_temperature(temperature)
        # Only the tokens before a sampled pad id count, as in TRL's masked KL (item 2, issue 27).
        responses = [cut_at_pad(r, self.end_id) for r in responses]
        mine = (
            [list(s)[: len(r)] for s, r in zip(sampled, responses, strict=True)]
            if sampled is not None
            else self._logprobs(self._checkpoint_model(), prompts, responses, t)
        )
        with self._base_context():
            model = self.base if self.base is not None else self.policy
            theirs = self._logprobs(model, prompts, responses, t, self.base_cache)
        return [kl_estimates(a, b) for a, b in zip(mine, theirs, strict=True)]


class RewardScorer:
    """A sequence-classification reward model (num_labels=1) scoring token sequences.

    It must share the policy's tokenizer: it reads the policy's token ids as they were sampled.
    """

    def __init__(
        self,
        path: str,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        dtype: torch.dtype = torch.float32,
        prompt_cache: PromptCache | None = None,
    ) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.path = path
        self.prompt_cache = prompt_cache
        """This model's prompt prefixes (KV and last hidden state), when they are to be reused:
        the same prompts come back for every checkpoint of a run and every sample of a prompt.
        The caller keys it on these weights and dtype (`weights_key`)."""
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForSequenceClassification.from_pretrained(
                path, dtype=dtype, attn_implementation=register_attention()
            )
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"reward model {path} cannot be loaded: {first}") from None
        if PAD_TOKEN in self.tokenizer.get_vocab():
            self.tokenizer.pad_token = PAD_TOKEN
        elif self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.eos_id = int(self.tokenizer.eos_token_id)
        self.model = model.to(device).eval()
        self.device = device
        self.batch_size = batch_size

    def check_tokenizer(self, policy_tokenizer: Any) -> None:
        why = tokenizer_mismatch(policy_tokenizer, self.tokenizer)
        if why:
            raise ConfigError(
                f"reward model {self.path} has another tokenizer than the policy: {why}"
            )

    @property
    def dtype_name(self) -> str:
        """The weights' dtype as the config names it (what `scored_by` records)."""
        return str(next(self.model.parameters()).dtype).removeprefix("torch.")

    def score(
        self, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]]
    ) -> list[float]:
        """Score of each scored_sequence(prompt, response), read at its last token."""
        return self.score_at(prompts, responses, None)[0]

    @torch.no_grad()
    def score_at(
        self,
        prompts: Sequence[Sequence[int]],
        responses: Sequence[Sequence[int]],
        length: int | None,
    ) -> tuple[list[float], list[float | None]]:
        """(score of each whole response, score of its first `length` tokens) in one pass.

        Attention is causal and the batch right-padded, so the hidden state at the last token of
        the first `length` response tokens is the one that truncated sequence would give alone:
        the reward at PPO's response length costs one more row of the score head, not a pass.
        """
        pad = None if self.pad_id == self.eos_id else self.pad_id
        cut = [scored_sequence([], r, self.eos_id, pad) for r in responses]
        if self.prompt_cache is not None:
            return self._score_cached(prompts, cut, length)
        seqs = [[*map(int, p), *c] for p, c in zip(prompts, cut, strict=True)]
        backbone = getattr(self.model, self.model.base_model_prefix)
        scores = [0.0] * len(seqs)
        short: list[float | None] = [None] * len(seqs)
        for batch in _batches([len(s) for s in seqs], self.batch_size):
            ids, mask = _right_pad([seqs[i] for i in batch], self.pad_id, self.device)
            hidden = backbone(
                input_ids=ids, attention_mask=mask, use_cache=False
            ).last_hidden_state  # (B, T, H); no KV cache: nothing reads it
            rows = torch.arange(len(batch))
            last = hidden[rows, torch.tensor([len(seqs[i]) - 1 for i in batch])]  # (B, H)
            at = [len(prompts[i]) + min(len(cut[i]), length or 0) - 1 for i in batch]
            self._read(batch, last, hidden[rows, torch.tensor(at)], scores, short, length)
        return scores, short

    def _score_cached(
        self, prompts: Sequence[Sequence[int]], cut: Sequence[Sequence[int]], length: int | None
    ) -> tuple[list[float], list[float | None]]:
        """`score_at` with the prompts' prefixes from `prompt_cache`: only the responses run."""
        assert self.prompt_cache is not None
        scores = [0.0] * len(cut)
        short: list[float | None] = [None] * len(cut)
        for batch, rows in cached_hidden(
            getattr(self.model, self.model.base_model_prefix), self.prompt_cache, prompts, cut,
            pad_id=self.pad_id, device=self.device, batch_size=self.batch_size,
            config=self.model.config,
        ):  # fmt: skip
            # Row j of a response's hidden states is the sequence's position len(prompt) - 1 + j.
            last = torch.stack([r[-1] for r in rows])  # (B, H)
            at = torch.stack(
                [r[min(len(cut[i]), length or 0)] for i, r in zip(batch, rows, strict=True)]
            )
            self._read(batch, last, at, scores, short, length)
        return scores, short

    def _read(
        self,
        batch: Sequence[int],
        last: torch.Tensor,
        at: torch.Tensor,
        scores: list[float],
        short: list[float | None],
        length: int | None,
    ) -> None:
        """Score-head values of a batch into `scores` (at the last token) and `short` (at PPO's
        response length, when asked)."""
        for i, value in zip(batch, self.model.score(last).float()[:, 0].tolist(), strict=True):
            scores[i] = value
        if length is not None:
            values = self.model.score(at).float()[:, 0].tolist()
            for i, value in zip(batch, values, strict=True):
                short[i] = value


class PromptCache:
    """Each prompt's KV cache (every layer) and last hidden state under one frozen model.

    The base model (and its dtype) is the same for every checkpoint of a run, and so is each
    held-out prompt: its teacher-forced prefix need not be computed again per checkpoint. Keyed
    by the caller on the weights' identity (`weights_key`) and dtype; entries by prompt ids.
    Bounded: past `max_prompts` it starts over (a 135M model's fp32 KV is ~4 MB per prompt).
    """

    def __init__(self, max_prompts: int = 256) -> None:
        self.max_prompts = max_prompts
        self.entries: dict[
            tuple[int, ...], tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]
        ] = {}

    @torch.no_grad()
    def fill(
        self,
        backbone: Any,
        prompts: Sequence[Sequence[int]],
        pad_id: int,
        device: str,
        batch_size: int,
    ) -> None:
        """Compute what is missing (right-padded batches: a prompt's first positions do not
        depend on the padding after them, so its slice of the batch's cache is its own)."""
        missing = list(
            dict.fromkeys(
                tuple(int(t) for t in p)
                for p in prompts
                if tuple(int(t) for t in p) not in self.entries
            )
        )
        if len(self.entries) + len(missing) > self.max_prompts:
            self.entries.clear()
        for batch in _batches([len(p) for p in missing], batch_size):
            ids, mask = _right_pad([missing[i] for i in batch], pad_id, device)
            out = backbone(input_ids=ids, attention_mask=mask, use_cache=True)
            layers = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
            for row, i in enumerate(batch):
                n = len(missing[i])
                kv = [(k[row, :, :n].clone(), v[row, :, :n].clone()) for k, v in layers]
                self.entries[missing[i]] = (kv, out.last_hidden_state[row, n - 1].clone())


_PROMPT_CACHES: dict[str, PromptCache] = {}


def shared_prompt_cache(key: str) -> PromptCache:
    """The process's cache for one model's weights and dtype (one worker evaluates a run's
    checkpoints one after another: the base's prompts are computed once)."""
    return _PROMPT_CACHES.setdefault(key, PromptCache())


def weights_key(folder: str, dtype: torch.dtype) -> str:
    """A model's weights identity: its folder, the sha256 of its weight files (a folder whose
    weights were replaced gets another key) and the dtype."""
    import hashlib
    from pathlib import Path

    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.safetensors")) + sorted(Path(folder).glob("*.bin")):
        with path.open("rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return f"{Path(folder).resolve()}:{digest.hexdigest()[:16]}:{dtype}"


def _stacked_past(
    entries: Sequence[tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]],
    lengths: Sequence[int],
    config: Any,
) -> Any:
    """The prompts' cached KV stacked into one batch cache, left-padded to the longest."""
    from transformers import DynamicCache

    width = max(lengths)
    layers = []
    for layer in range(len(entries[0][0])):
        k0, v0 = entries[0][0][layer]
        k = k0.new_zeros((len(entries), k0.shape[0], width, k0.shape[2]))  # (B, heads, W, d)
        v = v0.new_zeros((len(entries), v0.shape[0], width, v0.shape[2]))
        for row, (kv, _) in enumerate(entries):
            k[row, :, width - lengths[row] :] = kv[layer][0]
            v[row, :, width - lengths[row] :] = kv[layer][1]
        layers.append((k, v))
    return DynamicCache(layers, config=config)


@torch.no_grad()
def cached_hidden(
    backbone: Any,
    cache: PromptCache,
    prompts: Sequence[Sequence[int]],
    inputs: Sequence[Sequence[int]],
    *,
    pad_id: int,
    device: str = "cpu",
    batch_size: int = 16,
    config: Any = None,
) -> Iterator[tuple[list[int], list[torch.Tensor]]]:
    """Hidden states of prompt + input i at positions len(prompt) - 1 ... len(prompt) +
    len(input) - 1, each prompt's prefix read from `cache` (filled here where missing): only the
    inputs run through the backbone. Yields (indices, one (1 + len(input), H) tensor each) per
    batch of similar input lengths.

    A batch stacks the prompts' caches left-padded to the longest (masked), the inputs follow
    right-padded at their own positions (position ids len(prompt) + j), as left-padded
    generation does. The sums run in another order than the full pass: in fp32 within ~1e-5.
    """
    cache.fill(backbone, prompts, pad_id, device, batch_size)
    keys = [tuple(int(t) for t in p) for p in prompts]
    for batch in _batches([len(x) for x in inputs], batch_size):
        entries = [cache.entries[keys[i]] for i in batch]
        lengths = [len(keys[i]) for i in batch]
        width = max(lengths)
        steps = max(len(inputs[i]) for i in batch)
        hidden = None
        if steps > 0:
            ids = torch.full((len(batch), steps), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width + steps), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : len(inputs[i])] = torch.tensor(list(inputs[i]), dtype=torch.long)
                mask[row, width - lengths[row] : width + len(inputs[i])] = 1
            positions = torch.tensor(lengths)[:, None] + torch.arange(steps)[None, :]
            hidden = backbone(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
                past_key_values=_stacked_past(entries, lengths, config),
                use_cache=False,
            ).last_hidden_state  # (B, steps, H)
        rows = []
        for row, i in enumerate(batch):
            first = entries[row][1][None, :]  # (1, H): the prompt's last position
            rest = hidden[row, : len(inputs[i])] if hidden is not None else first[:0]
            rows.append(torch.cat([first, rest]))
        yield batch, rows
