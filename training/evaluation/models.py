"""Load what one evaluation job needs: a generator, the KL scorer and the reward model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from judging.data.models import Checkpoint
from judging.errors import ConfigError
from judging.evaluation.config import EvalConfig
from training.evaluation.scoring import (
    KLScorer,
    RewardScorer,
    shared_prompt_cache,
    weights_key,
)
from training.generation.base import Generator, ModelRef, load_tokenizer, model_ref_for
from training.generation.hf import TransformersGenerator, load_causal_lm


@dataclass
class JobModels:
    generator: Generator
    tokenizer: Any
    """The policy's tokenizer: prompt ids for KL must equal the ones the generator used."""
    model_ref: ModelRef
    kl: KLScorer | None
    """None for a base checkpoint, whose KL from itself is 0 by definition."""
    reward: RewardScorer | None
    """The reward model PPO optimised."""
    closers: list[Callable[[], None]] = field(default_factory=list)
    eval_reward: RewardScorer | None = None
    """A reward model PPO did not optimise (None when none is configured or found)."""

    def close(self) -> None:
        for close in self.closers:
            close()


def make_generator(config: EvalConfig, ref: ModelRef, policy: Any, tokenizer: Any) -> Generator:
    if config.backend == "transformers":
        if config.generation_dtype == "bfloat16":  # a bf16 copy samples; KL keeps the fp32 one
            # The LoRA merged: decoding runs plain linear layers, not peft's extra matmuls, dtype
            # casts and adds per adapted module and step (bench/README.md, issue 27).
            policy = sampling_copy(ref, config.device)
        return TransformersGenerator(
            ref,
            device=config.device,
            batch_size=config.batch_size,
            model=policy,
            tokenizer=tokenizer,
        )
    if config.backend == "vllm":
        from training.generation.vllm_offline import shared_vllm_generator

        return shared_vllm_generator(config, ref)
    if config.backend == "vllm-server":
        from training.generation.vllm_server import VllmServerGenerator

        return VllmServerGenerator(config.server, ref, tokenizer=tokenizer)
    raise ConfigError(f"unknown backend {config.backend!r}")


def sampling_copy(ref: ModelRef, device: str) -> Any:
    """The checkpoint in bf16 for sampling, a LoRA adapter merged into the weights.

    Merged in fp32, then cast: each weight is bf16(W + BA), the nearest bf16 model to the
    checkpoint, and decoding runs plain linear layers instead of peft's three matmuls and their
    Python per LoRA module and step. Its samples come from the same distribution as the peft
    model's up to bf16 rounding (KL is recomputed in fp32 on whatever was sampled).

    A base checkpoint (no adapter) samples exactly as before: the merge changes only what a
    LoRA adds, so the base's rows, which every checkpoint is compared with, do not move.
    """
    if not ref.adapter_path:
        return load_causal_lm(ref, device=device, dtype=torch.bfloat16)
    merged = load_causal_lm(ref, device="cpu").merge_and_unload()
    return merged.to(device=device, dtype=torch.bfloat16).eval()


def load_job_models(checkpoint: Checkpoint, config: EvalConfig) -> JobModels:
    """Models for one checkpoint; the transformers policy also serves KL in fp32."""
    if config.threads:
        torch.set_num_threads(config.threads)
    run = checkpoint.run
    ref = model_ref_for(checkpoint.path, run.base_model, checkpoint.kind)
    tokenizer = load_tokenizer(ref)
    policy = load_causal_lm(ref, device=config.device)
    kl: KLScorer | None = None
    if checkpoint.kind != "base":
        base = (
            None
            if ref.adapter_path
            else load_causal_lm(ModelRef(run.base_model), device=config.device)
        )
        kl = KLScorer(
            policy,
            base=base,
            pad_id=int(tokenizer.pad_token_id),
            end_id=_end_id(tokenizer),
            # The base's prompt prefixes, computed once per worker process for a run's base
            # weights (fp32) and reused by every checkpoint it evaluates.
            base_cache=shared_prompt_cache(weights_key(run.base_model, torch.float32)),
            device=config.device,
            # A teacher-forced pass, like the reward model's: `score_batch_size` (documented so,
            # and what bench/bench_evaluate.py measures), not the generation batch.
            batch_size=config.score_batch_size,
            # The checkpoint's pass on a merged fp32 copy: 1.0-1.3x on that pass (a noisy
            # micro-benchmark), one more fp32 model in memory.
            merge=True,
        )
    reward_path = config.reward_model or run.reward_model
    reward = _reward_scorer(reward_path, config, tokenizer)
    eval_reward = _reward_scorer(config.eval_reward_model, config, tokenizer)
    generator = make_generator(config, ref, policy, tokenizer)
    return JobModels(
        generator, tokenizer, ref, kl, reward, closers=[generator.close], eval_reward=eval_reward
    )


def _reward_scorer(path: str | None, config: EvalConfig, tokenizer: Any) -> RewardScorer | None:
    """A reward scorer that reads the policy's token ids (so it must share its tokenizer)."""
    if not path:
        return None
    dtype = torch.bfloat16 if config.reward_dtype == "bfloat16" else torch.float32
    scorer = RewardScorer(
        path,
        device=config.device,
        batch_size=config.score_batch_size,
        dtype=dtype,
        # Its prompt prefixes, computed once per worker process for these weights and dtype and
        # reused by every checkpoint of the run.
        prompt_cache=shared_prompt_cache(weights_key(path, dtype)),
    )
    scorer.check_tokenizer(tokenizer)
    return scorer


def _end_id(tokenizer: Any) -> int | None:
    """The pad id, where it is not EOS: TRL ends a rollout's scored part before it (item 2)."""
    pad, eos = int(tokenizer.pad_token_id), int(tokenizer.eos_token_id)
    return None if pad == eos else pad
