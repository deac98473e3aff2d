"""Typed training configs: YAML files plus `--set section.key=value` overrides, validated on load.

Every section is a pydantic model (`extra="forbid"`, strict types) whose fields carry a docstring,
as the evaluation config's (judging/evaluation/config.py). An unknown key, a value of the wrong
type, a malformed YAML file or a failed cross-field check is a one-line ConfigError naming the key
or the line. The models stay mutable, like the settings they replaced: the trainers resolve paths
in place (`training.common`), with no validation on assignment.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from judging.errors import ConfigError

Algorithm = Literal["ppo", "rm", "sft", "dpo"]


def _number_from_text(value: Any) -> Any:
    """YAML 1.1 reads `1e-5` as a string; accept a numeric string for a number field."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _text_from_number(value: Any) -> Any:
    """A number given for a text field (`run.name: 2026`) is its text; a bool is not."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Number = Annotated[float, BeforeValidator(_number_from_text)]
"""A float field: ints and numeric strings accepted, bools not."""
Text = Annotated[str, BeforeValidator(_text_from_number)]
"""A string field: numbers accepted as their text, bools and nulls not."""


class _Section(BaseModel):
    # strict: no "yes" for true or 3.0 for an int; Number and Text widen what they accept.
    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True)


class RunSection(_Section):
    """Identity, budget and bookkeeping of one run."""

    name: Text = ""
    """Run name (unique in the database); defaults to the config file's stem."""
    output_dir: Text = ""
    """Where checkpoints go; defaults to `<data_dir>/runs/<name>`."""
    max_steps: int = 20
    """Stop after this many optimizer steps (PPO: rollout batches)."""
    max_seconds: Number = 0.0
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


class ModelSection(_Section):
    """Which weights to start from."""

    base_model: Text = "var/models/SmolLM2-135M-Instruct"
    """Policy (and reference) starting point: a local folder or a hub name."""
    reward_model: Text = ""
    """PPO: reward model folder (AutoModelForSequenceClassification, num_labels=1)."""
    ref_model: Text = ""
    """PPO/DPO: reference model; empty means the base model."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype; use float32 on CPU."""
    bf16: bool = False
    """Mixed precision (bf16 autocast): on a GPU, or a CPU with bf16 units (AVX512-BF16)."""
    load_in_4bit: bool = False
    """Quantise the frozen base to 4 bits with bitsandbytes (GPU + LoRA only)."""
    gradient_checkpointing: bool = False
    """Trade compute for memory on large models."""


class LoraSection(_Section):
    """Low-rank adapters; disabled means full fine-tuning."""

    enabled: bool = True
    """Train a LoRA adapter instead of all weights."""
    r: int = 8
    """Adapter rank."""
    alpha: int = 16
    """LoRA scaling numerator (scale = alpha / r)."""
    dropout: Number = 0.0
    """Dropout on the adapter input."""
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    """Module names that get adapters."""


class DataSection(_Section):
    """Training data: prompt file for PPO, preference pairs for RM/DPO/SFT."""

    prompts: Text = "data/prompts/train.jsonl"
    """PPO: JSONL/CSV prompt file (fields prompt/text/instruction)."""
    preferences: Text = "data/preferences/train.jsonl"
    """RM/DPO/SFT: JSONL with prompt, chosen, rejected (SFT also accepts prompt, response)."""
    heldout_preferences: Text = "data/preferences/heldout.jsonl"
    """RM: held-out pairs for the evaluation report; empty skips it."""
    hub_dataset: Text = ""
    """Optional `datasets` hub name used instead of the local file (needs internet)."""
    hub_split: Text = "train"
    """Split of the hub dataset."""
    max_prompt_tokens: int = 128
    """Drop prompts longer than this (tokens, after the chat template)."""
    max_length: int = 384
    """Drop pairs/examples longer than this (prompt + response tokens)."""
    max_samples: int = 0
    """Keep only the first N examples; 0 keeps all."""


class OptimSection(_Section):
    """Optimizer and batch shape."""

    learning_rate: Number = 1e-5
    """Peak learning rate."""
    batch_size: int = 8
    """Per-device batch size (PPO: rollouts per step)."""
    gradient_accumulation_steps: int = 1
    """Micro-batches accumulated per optimizer step."""
    lr_scheduler_type: Text = "constant"
    """transformers scheduler name; constant keeps resumed PPO runs on the same schedule."""
    warmup_ratio: Number = 0.0
    """Share of steps used for warm-up (passed as a fraction to `warmup_steps`)."""
    num_epochs: Number = 1.0
    """RM/SFT/DPO: passes over the data (max_steps still caps it)."""


class KLSection(_Section):
    """KL penalty against the reference policy."""

    coef: Number = 0.05
    """Initial (or fixed) KL coefficient beta."""
    adaptive: bool = False
    """Adapt beta with the Ziegler et al. proportional controller."""
    target: Number = 6.0
    """Adaptive: target KL per sequence (nats)."""
    horizon: int = 10000
    """Adaptive: controller horizon in episodes."""
    estimator: Literal["k1", "k3"] = "k1"
    """TRL's per-token KL estimator."""


class PPOSection(_Section):
    """PPO rollouts and updates (TRL's experimental PPOTrainer)."""

    response_length: int = 48
    """Maximum new tokens per rollout."""
    temperature: Number = 0.7
    """Sampling temperature for rollouts."""
    num_ppo_epochs: int = 4
    """Optimisation passes over each rollout batch."""
    num_mini_batches: int = 1
    """Mini-batches per PPO epoch."""
    local_rollout_forward_batch_size: int = 8
    """Rollouts generated and scored per forward pass."""
    missing_eos_penalty: Number = 1.0
    """Subtracted from the score of responses that never stop; 0 disables it."""
    vf_coef: Number = 0.1
    """Weight of the value loss."""
    cliprange: Number = 0.2
    """Policy ratio clip."""
    cliprange_value: Number = 0.2
    """Value clip."""
    whiten_rewards: bool = False
    """Whiten per-token rewards (needs mini-batches of >= 8)."""
    value_train_top_layers: int = 0
    """Train only the top N layers of the value model (+ norm, head); 0 = all. Cheaper on CPU."""
    kl: KLSection = Field(default_factory=KLSection)
    """KL control."""


class RMSection(_Section):
    """Reward-model training."""

    center_rewards_coefficient: Number = 0.0
    """Penalty pulling rewards towards 0 (0 disables it)."""
    calibration_bins: int = 10
    """Reliability bins in the report."""
    train_top_layers: int = 0
    """Train just the top N transformer layers (+ norm and head); 0 = all. With LoRA, adapters go
    on those layers only. Backpropagation then stops early: several times cheaper on CPU."""
    heldout_max_pairs: int = 0
    """Score at most this many held-out pairs for the report; 0 = all."""
    pair_half: Text = "all"
    """Train on "all" preference pairs or on the "first" / "second" half (split by a hash of the
    prompt, so the halves share no prompt): PPO's reward model on one half, the evaluation
    reward model that judges PPO's checkpoints on the other."""


class DPOSection(_Section):
    """Direct preference optimisation."""

    beta: Number = 0.1
    """Strength of the implicit KL constraint."""
    loss_type: Text = "sigmoid"
    """TRL DPO loss type."""


class TrainConfig(_Section):
    """A full training recipe; only the sections its algorithm reads matter."""

    run: RunSection = Field(default_factory=RunSection)
    """Identity, budget, saving."""
    model: ModelSection = Field(default_factory=ModelSection)
    """Weights to start from."""
    lora: LoraSection = Field(default_factory=LoraSection)
    """Adapters or full fine-tuning."""
    data: DataSection = Field(default_factory=DataSection)
    """Training data."""
    optim: OptimSection = Field(default_factory=OptimSection)
    """Optimizer and batches."""
    ppo: PPOSection = Field(default_factory=PPOSection)
    """PPO only."""
    rm: RMSection = Field(default_factory=RMSection)
    """Reward model only."""
    dpo: DPOSection = Field(default_factory=DPOSection)
    """DPO only."""

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts and lists (stored with the run in the database)."""
        return self.model_dump()

    @model_validator(mode="after")
    def _cross_field_checks(self) -> TrainConfig:
        """Checks that a type alone cannot express; each names its key(s)."""
        checks = [
            (self.run.max_steps >= 1, "'run.max_steps' must be at least 1"),
            (self.run.save_every >= 1, "'run.save_every' must be at least 1"),
            (self.run.first_save >= 0, "'run.first_save' must be 0 (none) or a step number"),
            (self.run.max_seconds >= 0, "'run.max_seconds' must be >= 0"),
            (self.optim.batch_size >= 1, "'optim.batch_size' must be at least 1"),
            (self.optim.learning_rate > 0, "'optim.learning_rate' must be positive"),
            (self.lora.r >= 1, "'lora.r' must be at least 1"),
            (self.ppo.response_length >= 1, "'ppo.response_length' must be at least 1"),
            (self.ppo.kl.coef >= 0, "'ppo.kl.coef' must be >= 0"),
            (self.ppo.kl.target > 0, "'ppo.kl.target' must be positive"),
            (self.ppo.kl.horizon >= 1, "'ppo.kl.horizon' must be at least 1"),
            (
                not self.model.load_in_4bit or self.lora.enabled,
                "'model.load_in_4bit' needs 'lora.enabled: true'",
            ),
            (
                self.ppo.num_mini_batches >= 1
                and self.optim.batch_size % self.ppo.num_mini_batches == 0,
                "'optim.batch_size' must be a multiple of 'ppo.num_mini_batches'",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        return self


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin is list:
        return "a list of strings"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return names.get(annotation, str(annotation))


def _field_at(loc: tuple[int | str, ...]) -> tuple[list[str], type[BaseModel], Any]:
    """(key path, model holding the last key, that key's annotation or None) for an error loc.

    The path stops at the first field that is not a section: an error inside a list (item 2 of
    `lora.target_modules`) is an error of the list field."""
    model: type[BaseModel] = TrainConfig
    path: list[str] = []
    for depth, part in enumerate(loc):
        name = str(part)
        path.append(name)
        info = model.model_fields.get(name)
        if info is None:
            return path, model, None
        annotation = info.annotation
        if _is_section(annotation) and depth < len(loc) - 1:
            model = annotation
            continue
        return path, model, annotation
    return path, model, None


def _is_section(annotation: Any) -> typing.TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _lookup(data: Any, path: list[str]) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _message(exc: ValidationError, data: dict[str, Any], source: Any) -> str:
    """The first error as one line naming the key; `source(path)` says where the key was set."""
    first = exc.errors()[0]
    if first["type"] == "value_error" and not first["loc"]:
        return str(first["msg"]).removeprefix("Value error, ")
    path, model, annotation = _field_at(tuple(first["loc"]))
    full = ".".join(path)
    if first["type"] == "extra_forbidden":
        close = difflib.get_close_matches(path[-1], list(model.model_fields), n=1)
        prefix = ".".join([*path[:-1], close[0]]) if close else ""
        hint = f" (did you mean '{prefix}'?)" if close else ""
        return f"{source(path)}: unknown key '{full}'{hint}"
    if _is_section(annotation):
        return f"{source(path)}: '{full}' must be a mapping of settings"
    return f"'{full}' must be {_type_name(annotation)}, got {_lookup(data, path)!r}"


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


def _set(data: dict[str, Any], path: list[str], value: Any) -> None:
    """Set `path` in nested `data`; a non-mapping on the way is replaced by a mapping (the
    override then reaches validation and fails there, naming the key)."""
    for part in path[:-1]:
        inner = data.get(part)
        if not isinstance(inner, dict):
            inner = data[part] = {}
        data = inner
    data[path[-1]] = value


def load_config(
    path: str | Path | None, overrides: list[str] | None = None, *, name: str | None = None
) -> TrainConfig:
    """Defaults, then the YAML file, then each `key=value` override, validated together; then
    derived defaults. An error names the file or `--set`, whichever set the key."""
    data: dict[str, Any] = {}
    file = "defaults"
    if path is not None:
        path = Path(path)
        file = path.name
        data = _read_yaml(path)
    overridden: list[list[str]] = []
    for text in overrides or []:
        keys, value = parse_override(text)
        _set(data, keys, value)
        overridden.append(keys)

    def source(key: list[str]) -> str:
        """`--set` when an override set this key, a key inside it or a section around it."""
        hits = [o for o in overridden if o[: len(key)] == key or key[: len(o)] == o]
        return "--set" if hits else file

    try:
        config = TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_message(exc, data, source)) from None
    if name:
        config.run.name = name
    if not config.run.name:
        config.run.name = Path(path).stem if path is not None else "run"
    return config


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
