"""The evaluation config (YAML): backend, sampling, batching, seeds and diagnostic thresholds.

Validated up front like the training configs: an unknown or mistyped key is a one-line ConfigError
naming it, never a silent default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from judging.errors import ConfigError
from judging.text import REFUSAL_PREFIXES, SYCOPHANCY_MARKERS

DEFAULT_EVAL_CONFIG = Path(__file__).resolve().parents[2] / "training" / "configs" / "eval_cpu.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sampling(_Strict):
    temperature: float = Field(0.7, ge=0.0)
    """PPO's rollout temperature (TRL default 0.7): held-out samples then come from the
    distribution PPO optimised, and KL is that of the tempered distributions on both sides."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """1 keeps the KL estimates unbiased (samples from the tempered distribution itself); below 1
    the summary marks the KL `exact: false` (see training/evaluation/scoring.py)."""
    max_new_tokens: int = Field(512, ge=1)
    """From the base's measured length distribution on the held-out prompts (bench/README.md):
    512 cuts 24.5% of the base's answers; 19.5% do not stop within 640 tokens at all, so no
    affordable limit reaches 10%. Growth is also reported on untruncated answers."""


class VllmOptions(_Strict):
    enforce_eager: bool = True
    max_lora_rank: int = Field(16, ge=1)
    max_loras: int = Field(2, ge=1)
    max_model_len: int = Field(2048, ge=16)
    gpu_memory_utilization: float = Field(0.5, gt=0.0, le=1.0)
    dtype: str = "float32"
    """fp32 keeps sampled-token log-probs within ~1e-5 of transformers (bf16 drifts by ~0.1)."""


class ServerOptions(_Strict):
    url: str = "http://127.0.0.1:8001"
    base_model_name: str | None = None
    """Served name of the base model; default: the base folder path as vLLM names it."""
    timeout_s: float = Field(120.0, gt=0)


class DiagnosticsOptions(_Strict):
    seq_rep_n: int = Field(4, ge=1)
    self_bleu_max_n: int = Field(4, ge=1, le=4)
    self_bleu_sample: int = Field(50, ge=2)
    refusal_prefixes: tuple[str, ...] = REFUSAL_PREFIXES
    sycophancy_markers: tuple[str, ...] = SYCOPHANCY_MARKERS


class Thresholds(_Strict):
    max: dict[str, float] = Field(
        default_factory=lambda: {
            "length_growth": 1.5,
            "truncation_excess": 0.1,
            "seq_rep": 0.2,
            "self_bleu": 0.6,
            "refusal_rate": 0.1,
            "sycophancy_rate": 0.05,
            "emoji_rate": 0.2,
            "headers_rate": 0.5,
        }
    )
    """A flag `metric>limit` is raised when a summary metric exceeds its limit."""
    min: dict[str, float] = Field(default_factory=lambda: {"distinct_2": 0.2})
    """A flag `metric<limit` is raised when a summary metric falls below its limit."""


class EvalConfig(_Strict):
    backend: Literal["transformers", "vllm", "vllm-server"] = "transformers"
    device: str = "cpu"
    batch_size: int = Field(64, ge=1)
    """Prompts generated together (sorted by length; finished rows leave the batch) and
    committed as one unit; a killed worker loses at most one batch."""
    score_batch_size: int = Field(32, ge=1)
    """Sequences per reward-model and KL teacher-forced forward pass."""
    generation_dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """Weights the transformers generator samples with. bfloat16 samples ~3x faster on CPUs with
    AMX/AVX512-BF16 (and on GPUs); the checkpoint's log-probs are then recomputed in fp32, because
    KL always uses fp32 log-probs (bf16 teacher forcing biased the per-response KL by +0.1 nats).
    float32: the sampled log-probs are exact and KL reuses them. auto: bfloat16 where the hardware
    has it, else float32; the resolved name is what every generation row records."""
    reward_dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """Weights the reward models score with (auto as above). A score is one number read off the
    last hidden state; bf16 moved scores by far less than their spread across responses (see
    bench/bench_evaluate.py) at a third of the cost."""
    seed: int = 1234
    """Prompt i of a set is sampled with seed + its position, for the base and every checkpoint."""
    sampling: Sampling = Sampling()
    reward_model: str | None = None
    """Reward model folder; default: the run's reward_model (the one PPO optimised)."""
    eval_reward_model: str | None = None
    """Evaluation reward model PPO did not optimise (e.g. `rlhf train rm` with
    `rm.pair_half: second` when PPO's reward model used `first`). Default: the newest registered
    reward model trained on the other half of the pairs, when one exists."""
    auto_eval_reward_model: bool = True
    """Look for that default evaluation reward model in the registry."""
    prompt_set: str | None = None
    """Held-out prompt set name; default: the first held-out set."""
    limit: int | None = Field(None, ge=1)
    """Evaluate only the first N prompts of the set (benchmarks, smoke runs)."""
    stale_after_s: float = Field(600.0, gt=0)
    """A running job whose heartbeat is older than this is taken over by another worker."""
    threads: int | None = Field(None, ge=1)
    vllm: VllmOptions = VllmOptions()
    server: ServerOptions = ServerOptions()
    diagnostics: DiagnosticsOptions = DiagnosticsOptions()
    thresholds: Thresholds = Thresholds()

    @model_validator(mode="after")
    def _seq_rep_thresholds_follow_n(self) -> EvalConfig:
        """`seq_rep` limits name the configured n; a limit for another n would never fire."""
        n = self.diagnostics.seq_rep_n
        for side in ("max", "min"):
            for key in getattr(self.thresholds, side):
                if key.startswith("seq_rep_") and key != f"seq_rep_{n}":
                    raise ValueError(
                        f"thresholds.{side}.{key} names another n than diagnostics.seq_rep_n = {n}"
                        f" (use seq_rep_{n} or seq_rep)"
                    )
        return self

    def limits(self, side: Literal["max", "min"]) -> dict[str, float]:
        """Thresholds with the generic `seq_rep` key resolved to the configured n."""
        raw = getattr(self.thresholds, side)
        n = self.diagnostics.seq_rep_n
        return {(f"seq_rep_{n}" if k == "seq_rep" else k): v for k, v in raw.items()}


def _message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "config"
    if first["type"] == "extra_forbidden":
        return f"unknown key {where!r}"
    if first["type"] == "value_error":
        return str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {first['msg']}"


def parse_eval_config(data: dict[str, Any], *, source: str = "config") -> EvalConfig:
    try:
        return EvalConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_message(exc)}") from None


def load_eval_config(path: Path | None = None, **overrides: Any) -> EvalConfig:
    """Read a YAML eval config (default `training/configs/eval_cpu.yaml`) and apply overrides."""
    path = path or DEFAULT_EVAL_CONFIG
    if not path.is_file():
        raise ConfigError(f"eval config {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return parse_eval_config(data, source=str(path))
