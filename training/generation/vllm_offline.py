"""The vLLM offline backend: one engine serves the base and every LoRA checkpoint of a run.

An adapter checkpoint is a `LoRARequest` on the base engine (no reload); a full fine-tune gets an
engine of its own. Only one engine is kept at a time, since each reserves its KV cache up front.
Run it in fp32 when its log-probs feed KL estimates (bf16 drifts by ~0.1 nats per token).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from judging.evaluation.config import EvalConfig, VllmOptions
from training.generation.base import (
    GenerationResult,
    ModelRef,
    SamplingParams,
    chat_prompt_ids,
    load_tokenizer,
)


class VllmEngine:
    """An `vllm.LLM` on one base folder, with LoRA enabled."""

    def __init__(self, base_path: str, options: VllmOptions) -> None:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        # In-process engine core: a spawned core would re-import the caller's __main__ (pytest,
        # the CLI), and one process keeps the worker simple to stop.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        self.base_path = base_path
        self.tokenizer = load_tokenizer(ModelRef(base_path))
        self.llm = LLM(
            model=base_path,
            enable_lora=True,
            max_lora_rank=options.max_lora_rank,
            max_loras=options.max_loras,
            enforce_eager=options.enforce_eager,
            dtype=options.dtype,
            max_model_len=options.max_model_len,
            gpu_memory_utilization=options.gpu_memory_utilization,
            # A split prefill discards its sampled token and rewinds the request's seeded
            # generator, which CPU generators cannot do ("CPU Generator does not use offset"):
            # with many seeded requests at once (bulk sampling) vLLM on CPU then crashes.
            enable_chunked_prefill=False,
        )
        self._lora_ids: dict[str, int] = {}

    def lora_request(self, ref: ModelRef) -> Any:
        if not ref.adapter_path:
            return None
        from vllm.lora.request import LoRARequest

        lora_id = self._lora_ids.setdefault(ref.adapter_path, len(self._lora_ids) + 1)
        return LoRARequest(ref.lora_name, lora_id, ref.adapter_path)

    def generate(
        self, ref: ModelRef, prompts: Sequence[str], params: SamplingParams, seeds: Sequence[int]
    ) -> list[GenerationResult]:
        from vllm import SamplingParams as VllmSampling
        from vllm.inputs import TokensPrompt

        inputs = [
            TokensPrompt(prompt_token_ids=chat_prompt_ids(self.tokenizer, p)) for p in prompts
        ]
        sampling = [
            VllmSampling(
                temperature=params.temperature,
                top_p=params.top_p,
                max_tokens=params.max_new_tokens,
                seed=int(seed),
                logprobs=1,
            )
            for seed in seeds
        ]
        outputs = self.llm.generate(
            inputs, sampling, lora_request=self.lora_request(ref), use_tqdm=False
        )
        return [_result(out.outputs[0]) for out in outputs]

    def shutdown(self) -> None:
        del self.llm


def _result(completion: Any) -> GenerationResult:
    token_ids = [int(t) for t in completion.token_ids]
    logprobs = None
    if completion.logprobs is not None:
        logprobs = [
            float(step[t].logprob) for step, t in zip(completion.logprobs, token_ids, strict=True)
        ]
    from training.generation.vllm_server import finish_reason

    reason = finish_reason(completion.finish_reason)  # "abort" is an error, never "length"
    return GenerationResult(completion.text, token_ids, reason, logprobs)


class VllmGenerator:
    """The Generator view of a shared engine for one checkpoint."""

    backend = "vllm"
    logprobs_exact = False  # vLLM reports untempered log-probs: KL recomputes them in fp32

    def __init__(self, engine: VllmEngine, ref: ModelRef) -> None:
        self.engine = engine
        self.ref = ref
        self.tokenizer = engine.tokenizer

    def generate(
        self, prompts: Sequence[str], params: SamplingParams, seeds: Sequence[int]
    ) -> list[GenerationResult]:
        return self.engine.generate(self.ref, prompts, params, seeds)

    def close(self) -> None:
        """The engine outlives the job: the next checkpoint of the run reuses it."""


def offline_generator(base_path: str, dtype: str = "float32") -> VllmGenerator:
    """A vLLM generator on the base folder alone (no LoRA), for bulk sampling: the ladder and
    its reward models' pairs, where vLLM's continuous batching is ~3x transformers on CPU."""
    return VllmGenerator(VllmEngine(base_path, VllmOptions(dtype=dtype)), ModelRef(base_path))


_ENGINES: dict[str, VllmEngine] = {}


def shared_vllm_generator(config: EvalConfig, ref: ModelRef) -> VllmGenerator:
    """A generator on the cached engine for `ref`'s base folder (replacing any other engine)."""
    engine = _ENGINES.get(ref.base_path)
    if engine is None:
        for old in _ENGINES.values():
            old.shutdown()
        _ENGINES.clear()
        engine = _ENGINES[ref.base_path] = VllmEngine(ref.base_path, config.vllm)
    return VllmGenerator(engine, ref)
