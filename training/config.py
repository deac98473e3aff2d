"""Typed training configs: YAML files plus `--set key=value` overrides, validated on load.

Every section is a dataclass whose fields carry a docstring. An unknown key, a value of the wrong
type or a malformed YAML file is a one-line ConfigError naming the key or the line.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from judging.errors import ConfigError

Algorithm = Literal["ppo", "rm", "sft", "dpo"]


@dataclass
class RunSection:
    """Identity, budget and bookkeeping of one run."""

    name: str = ""
    """Run name (unique in the database); defaults to the config file's stem."""
    output_dir: str = ""
    """Where checkpoints go; defaults to `<data_dir>/runs/<name>`."""
    max_steps: int = 20
    """Stop after this many optimizer steps (PPO: rollout batches)."""
    max_seconds: float = 0.0
    """Stop after this much wall-clock training time; 0 means no time limit."""
    save_every: int = 4
    """Save (and register) a checkpoint every N steps; the final step is always saved."""
    first_save: int = 0
    """Also save at this step (0: no extra save), so that the first checkpoint reaches the
    dashboard after one or two steps instead of after `save_every`."""
    seed: int = 0
    """Random seed for data order, sampling and initialisation."""
    threads: int = 0
    """torch CPU threads; 0 leaves torch's default."""
    report_to: Literal["none", "tensorboard", "wandb"] = "none"
    """Passed to transformers' `report_to`, for watching PPO live; the database stays the record.

    `tensorboard` writes event files offline to `<output>/runs/` (tensorboardX, in the train
    extra; view with `tensorboard --logdir <output>/runs`). `wandb` needs `pip install wandb`
    and a login, or `WANDB_MODE=offline` to sync later."""
    logging_steps: int = 1
    """Log (and store) metrics every N steps."""
    keep_resume_states: int = 1
    """PPO: how many resume states (value model weights) to keep on disk."""


@dataclass
class ModelSection:
    """Which weights to start from."""

    base_model: str = "var/models/SmolLM2-135M-Instruct"
    """Policy (and reference) starting point: a local folder or a hub name."""
    reward_model: str = ""
    """PPO: reward model folder (AutoModelForSequenceClassification, num_labels=1)."""
    ref_model: str = ""
    """PPO/DPO: reference model; empty means the base model."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype; use float32 on CPU."""
    bf16: bool = False
    """Mixed precision training (GPU only)."""
    load_in_4bit: bool = False
    """Quantise the frozen base to 4 bits with bitsandbytes (GPU + LoRA only)."""
    gradient_checkpointing: bool = False
    """Trade compute for memory on large models."""


@dataclass
class LoraSection:
    """Low-rank adapters; disabled means full fine-tuning."""

    enabled: bool = True
    """Train a LoRA adapter instead of all weights."""
    r: int = 8
    """Adapter rank."""
    alpha: int = 16
    """LoRA scaling numerator (scale = alpha / r)."""
    dropout: float = 0.0
    """Dropout on the adapter input."""
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    """Module names that get adapters."""


@dataclass
class DataSection:
    """Training data: prompt file for PPO, preference pairs for RM/DPO/SFT."""

    prompts: str = "data/prompts/train.jsonl"
    """PPO: JSONL/CSV prompt file (fields prompt/text/instruction)."""
    preferences: str = "data/preferences/train.jsonl"
    """RM/DPO/SFT: JSONL with prompt, chosen, rejected (SFT also accepts prompt, response)."""
    heldout_preferences: str = "data/preferences/heldout.jsonl"
    """RM: held-out pairs for the evaluation report; empty skips it."""
    hub_dataset: str = ""
    """Optional `datasets` hub name used instead of the local file (needs internet)."""
    hub_split: str = "train"
    """Split of the hub dataset."""
    max_prompt_tokens: int = 128
    """Drop prompts longer than this (tokens, after the chat template)."""
    max_length: int = 384
    """Drop pairs/examples longer than this (prompt + response tokens)."""
    max_samples: int = 0
    """Keep only the first N examples; 0 keeps all."""


@dataclass
class OptimSection:
    """Optimizer and batch shape."""

    learning_rate: float = 1e-5
    """Peak learning rate."""
    batch_size: int = 8
    """Per-device batch size (PPO: rollouts per step)."""
    gradient_accumulation_steps: int = 1
    """Micro-batches accumulated per optimizer step."""
    lr_scheduler_type: str = "constant"
    """transformers scheduler name; constant keeps resumed PPO runs on the same schedule."""
    warmup_ratio: float = 0.0
    """Share of steps used for warm-up (passed as a fraction to `warmup_steps`)."""
    num_epochs: float = 1.0
    """RM/SFT/DPO: passes over the data (max_steps still caps it)."""


@dataclass
class KLSection:
    """KL penalty against the reference policy."""

    coef: float = 0.05
    """Initial (or fixed) KL coefficient beta."""
    adaptive: bool = False
    """Adapt beta with the Ziegler et al. proportional controller."""
    target: float = 6.0
    """Adaptive: target KL per sequence (nats)."""
    horizon: int = 10000
    """Adaptive: controller horizon in episodes."""
    estimator: Literal["k1", "k3"] = "k1"
    """TRL's per-token KL estimator."""


@dataclass
class PPOSection:
    """PPO rollouts and updates (TRL's experimental PPOTrainer)."""

    response_length: int = 48
    """Maximum new tokens per rollout."""
    temperature: float = 0.7
    """Sampling temperature for rollouts."""
    num_ppo_epochs: int = 4
    """Optimisation passes over each rollout batch."""
    num_mini_batches: int = 1
    """Mini-batches per PPO epoch."""
    local_rollout_forward_batch_size: int = 8
    """Rollouts generated and scored per forward pass."""
    missing_eos_penalty: float = 1.0
    """Subtracted from the score of responses that never stop; 0 disables it."""
    vf_coef: float = 0.1
    """Weight of the value loss."""
    cliprange: float = 0.2
    """Policy ratio clip."""
    cliprange_value: float = 0.2
    """Value clip."""
    whiten_rewards: bool = False
    """Whiten per-token rewards (needs mini-batches of >= 8)."""
    value_train_top_layers: int = 0
    """Train only the top N layers of the value model (+ norm, head); 0 = all. Cheaper on CPU."""
    kl: KLSection = field(default_factory=KLSection)
    """KL control."""


@dataclass
class RMSection:
    """Reward-model training."""

    center_rewards_coefficient: float = 0.0
    """Penalty pulling rewards towards 0 (0 disables it)."""
    calibration_bins: int = 10
    """Reliability bins in the report."""
    train_top_layers: int = 0
    """Train just the top N transformer layers (+ norm and head); 0 = all. With LoRA, adapters go
    on those layers only. Backpropagation then stops early: several times cheaper on CPU."""
    heldout_max_pairs: int = 0
    """Score at most this many held-out pairs for the report; 0 = all."""
    pair_half: str = "all"
    """Train on "all" preference pairs or on the "first" / "second" half (split by a hash of the
    prompt, so the halves share no prompt): PPO's reward model on one half, the evaluation
    reward model that judges PPO's checkpoints on the other."""


@dataclass
class DPOSection:
    """Direct preference optimisation."""

    beta: float = 0.1
    """Strength of the implicit KL constraint."""
    loss_type: str = "sigmoid"
    """TRL DPO loss type."""


@dataclass
class TrainConfig:
    """A full training recipe; only the sections its algorithm reads matter."""

    run: RunSection = field(default_factory=RunSection)
    """Identity, budget, saving."""
    model: ModelSection = field(default_factory=ModelSection)
    """Weights to start from."""
    lora: LoraSection = field(default_factory=LoraSection)
    """Adapters or full fine-tuning."""
    data: DataSection = field(default_factory=DataSection)
    """Training data."""
    optim: OptimSection = field(default_factory=OptimSection)
    """Optimizer and batches."""
    ppo: PPOSection = field(default_factory=PPOSection)
    """PPO only."""
    rm: RMSection = field(default_factory=RMSection)
    """Reward model only."""
    dpo: DPOSection = field(default_factory=DPOSection)
    """DPO only."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin is list:
        return "a list of strings"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return names.get(annotation, str(annotation))


def _float_or_same(value: Any) -> Any:
    """YAML 1.1 reads `1e-5` as a string; accept it for float fields."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Return `value` checked against `annotation`, or raise ConfigError naming `key`."""
    origin = typing.get_origin(annotation)
    ok = False
    if origin is Literal:
        ok = value in typing.get_args(annotation)
    elif origin is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif annotation is bool:
        ok = isinstance(value, bool)
    elif annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif annotation is float:
        value = _float_or_same(value)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif annotation is str:
        ok = isinstance(value, str | int | float) and not isinstance(value, bool)
        value = str(value) if ok else value
    if not ok:
        raise ConfigError(f"'{key}' must be {_type_name(annotation)}, got {value!r}")
    return value


def _fill(target: Any, values: dict[str, Any], prefix: str, source: str) -> None:
    """Set fields of `target` from a (nested) mapping, checking names and types."""
    hints = typing.get_type_hints(type(target))
    names = [f.name for f in dataclasses.fields(target)]
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ConfigError(f"{source}: unknown key '{full}'{hint}")
        annotation = hints[key]
        if dataclasses.is_dataclass(annotation):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{full}' must be a mapping of settings")
            _fill(getattr(target, key), value, f"{full}.", source)
        else:
            setattr(target, key, _coerce(value, annotation, full))


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path.name}:{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name}: the top level must be a mapping of sections")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """`ppo.kl.coef=0.1` -> (['ppo', 'kl', 'coef'], 0.1); the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _nest(path: list[str], value: Any) -> dict[str, Any]:
    nested: dict[str, Any] = {path[-1]: value}
    for part in reversed(path[:-1]):
        nested = {part: nested}
    return nested


def load_config(
    path: str | Path | None, overrides: list[str] | None = None, *, name: str | None = None
) -> TrainConfig:
    """Defaults, then the YAML file, then each `key=value` override, then derived defaults."""
    config = TrainConfig()
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = path.name
        _fill(config, _read_yaml(path), "", source)
    for text in overrides or []:
        keys, value = parse_override(text)
        _fill(config, _nest(keys, value), "", "--set")
    if name:
        config.run.name = name
    if not config.run.name:
        config.run.name = Path(path).stem if path is not None else "run"
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    """Cross-field checks that a type alone cannot express."""
    checks = [
        (config.run.max_steps >= 1, "'run.max_steps' must be at least 1"),
        (config.run.save_every >= 1, "'run.save_every' must be at least 1"),
        (config.run.first_save >= 0, "'run.first_save' must be 0 (none) or a step number"),
        (config.run.max_seconds >= 0, "'run.max_seconds' must be >= 0"),
        (config.optim.batch_size >= 1, "'optim.batch_size' must be at least 1"),
        (config.optim.learning_rate > 0, "'optim.learning_rate' must be positive"),
        (config.lora.r >= 1, "'lora.r' must be at least 1"),
        (config.ppo.response_length >= 1, "'ppo.response_length' must be at least 1"),
        (config.ppo.kl.coef >= 0, "'ppo.kl.coef' must be >= 0"),
        (config.ppo.kl.target > 0, "'ppo.kl.target' must be positive"),
        (config.ppo.kl.horizon >= 1, "'ppo.kl.horizon' must be at least 1"),
        (
            not config.model.load_in_4bit or config.lora.enabled,
            "'model.load_in_4bit' needs 'lora.enabled: true'",
        ),
        (
            config.optim.batch_size % config.ppo.num_mini_batches == 0,
            "'optim.batch_size' must be a multiple of 'ppo.num_mini_batches'",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def resolve_path(value: str, base: Path | None = None) -> str:
    """Absolute path for local files; hub names (`org/name`, not on disk) pass through."""
    candidate = Path(value).expanduser()
    if not candidate.is_absolute():
        candidate = (base or Path.cwd()) / candidate
    if candidate.exists() or value.startswith((".", "/", "data/", "var/")):
        return str(candidate.resolve())
    return value


def saved_steps(run: RunSection) -> list[int]:
    """The steps a run that is not stopped early saves a checkpoint at."""
    steps = set(range(run.save_every, run.max_steps + 1, run.save_every)) | {run.max_steps}
    if 0 < run.first_save < run.max_steps:
        steps.add(run.first_save)
    return sorted(steps)
