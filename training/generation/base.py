"""The generator interface shared by every backend, and what a checkpoint's weights are."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from judging.errors import NotFoundError
from training.sequences import prompt_ids

PAD_TOKEN = "<|endoftext|>"


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 64

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GenerationResult:
    """One response: its text (special tokens dropped) and token ids (EOS included if emitted)."""

    text: str
    token_ids: list[int]
    finish_reason: str
    """"stop" when the model emitted EOS, "length" when max_new_tokens cut it, "pad" when it
    sampled the pad id (not kept: see `end_at_pad`)."""
    logprobs: list[float] | None = None
    """Log-prob of each sampled token at the sampling temperature (before top-p), if returned."""


@dataclass(frozen=True)
class ModelRef:
    """Which weights answer: a base folder, plus a LoRA adapter folder or nothing."""

    base_path: str
    adapter_path: str | None = None
    name: str | None = None
    """Served name of the adapter (vLLM server, LoRARequest); default derived from the path."""

    @property
    def label(self) -> str:
        return f"{self.base_path}+{self.adapter_path}" if self.adapter_path else self.base_path

    @property
    def lora_name(self) -> str:
        return self.name or Path(self.adapter_path or self.base_path).name


class Generator(Protocol):
    backend: str
    logprobs_exact: bool
    """True when `logprobs` are fp32-accurate log-probs of the tempered sampling distribution."""

    def generate(
        self, prompts: Sequence[str], params: SamplingParams, seeds: Sequence[int]
    ) -> list[GenerationResult]:
        """Answer each user prompt (chat template applied) with its own seed."""
        ...

    def close(self) -> None: ...


def is_adapter(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def model_ref_for(checkpoint_path: str, base_model: str, kind: str) -> ModelRef:
    """Follow the checkpoint contract: a base folder, a LoRA adapter folder, or a full model."""
    path = Path(checkpoint_path)
    if not path.exists():
        raise NotFoundError(f"checkpoint folder {path} does not exist")
    if kind == "base" or not is_adapter(path):
        if not (path / "config.json").is_file():
            raise NotFoundError(f"{path} is neither a LoRA adapter nor a model folder")
        return ModelRef(base_path=str(path))
    return ModelRef(base_path=base_model, adapter_path=str(path))


def chat_prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of a one-turn chat with the assistant turn opened (`training.sequences`)."""
    return prompt_ids(tokenizer, prompt)


def load_tokenizer(ref: ModelRef) -> Any:
    """The checkpoint's tokenizer if it saved one, else the base's; pad <|endoftext|>, left side."""
    from transformers import AutoTokenizer

    source = ref.adapter_path if ref.adapter_path and _has_tokenizer(ref.adapter_path) else None
    tokenizer = AutoTokenizer.from_pretrained(source or ref.base_path)
    if PAD_TOKEN in tokenizer.get_vocab():
        tokenizer.pad_token = PAD_TOKEN
    elif tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def _has_tokenizer(path: str) -> bool:
    return any(
        (Path(path) / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")
    )


def stop_token_ids(tokenizer: Any, generation_config: Any = None) -> set[int]:
    ids = {int(tokenizer.eos_token_id)} if tokenizer.eos_token_id is not None else set()
    extra = getattr(generation_config, "eos_token_id", None)
    if isinstance(extra, int):
        ids.add(extra)
    elif isinstance(extra, list):
        ids.update(int(i) for i in extra)
    return ids


def end_at_pad(result: GenerationResult, pad_id: int, tokenizer: Any) -> GenerationResult:
    """The response as PPO scored it: ended before the first sampled pad id ("pad").

    TRL masks every pad id of a rollout and reads the reward before the first one; the
    transformers sampler already stops there, other backends (vLLM) sample on and are cut here.
    """
    if result.finish_reason == "pad" or pad_id not in result.token_ids:
        return result
    at = result.token_ids.index(pad_id)
    ids = result.token_ids[:at]
    logprobs = result.logprobs[:at] if result.logprobs is not None else None
    return GenerationResult(tokenizer.decode(ids, skip_special_tokens=True), ids, "pad", logprobs)
