"""`rlhf train ppo`: PPO with a LoRA (or full) policy, frozen reference and reward model.

The value model starts from the reward model. Every `save_every` steps a checkpoint is saved,
registered in the DB and a resume state is written; the run stops cleanly at max_steps or
max_seconds, whichever comes first, with a final registered checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from typing_extensions import override

from judging.errors import ConfigError, InputFileError
from training.callbacks import (
    BudgetCallback,
    BudgetReached,
    EarlySaveCallback,
    KLControlCallback,
    RegistryCallback,
    crash_point,
)
from training.common import (
    RunRecorder,
    chat_prompt_ids,
    freeze_below_top,
    global_batch,
    load_tokenizer,
    lora_config,
    output_dir,
    quantization_kwargs,
    resolve_model_paths,
    setup_torch,
)
from training.config import TrainConfig
from training.kl_control import make_controller
from training.resume import (
    ResumeState,
    drop_unresumable,
    latest_state,
    register_missing,
    write_state,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_id: int
    status: str
    output_dir: Path
    start_step: int


class ResumeStateCallback(TrainerCallback):
    """After each save and BEFORE its registration, keep what a resume needs.

    Value model, beta and the training time so far. It must run before `RegistryCallback`: a
    crash between the two then leaves an unregistered checkpoint that `--resume` registers and
    continues from, never a registered (perhaps already evaluated) one that it would retrain.
    """

    def __init__(
        self, value_model: Any, out: Path, keep: int, elapsed: Callable[[], float]
    ) -> None:
        self.value_model = value_model
        self.out = out
        self.keep = keep
        self.elapsed = elapsed

    @override
    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if state.is_world_process_zero:
            crash_point("saved", state.global_step)
            write_state(
                self.out,
                state.global_step,
                self.value_model,
                float(cast(Any, args).kl_coef),
                self.keep,
                elapsed_seconds=self.elapsed(),
            )


def prompt_dataset(cfg: TrainConfig, tokenizer: PreTrainedTokenizerBase) -> Any:
    """Chat-templated, length-filtered prompts; only `input_ids` (TRL pads every column)."""
    from datasets import Dataset

    texts = _prompt_texts(cfg)
    ids = [chat_prompt_ids(tokenizer, text) for text in texts]
    ids = [row for row in ids if len(row) <= cfg.data.max_prompt_tokens]
    if cfg.data.max_samples:
        ids = ids[: cfg.data.max_samples]
    if len(ids) < cfg.optim.batch_size:
        raise ConfigError(
            f"only {len(ids)} prompts fit 'data.max_prompt_tokens' = {cfg.data.max_prompt_tokens}; "
            f"need at least 'optim.batch_size' = {cfg.optim.batch_size}"
        )
    return Dataset.from_dict({"input_ids": ids})


def _prompt_texts(cfg: TrainConfig) -> list[str]:
    if cfg.data.hub_dataset:  # users with internet only; never exercised in tests
        from datasets import load_dataset

        rows = load_dataset(cfg.data.hub_dataset, split=cfg.data.hub_split)
        return [str(r["prompt"]) for r in rows]
    from judging.data.prompts import parse_prompt_file

    path = Path(cfg.data.prompts)
    if not path.is_file():
        raise InputFileError(str(path), None, "prompt file does not exist")
    return [record.text for record in parse_prompt_file(path)]


def _set_pad(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


def load_models(
    cfg: TrainConfig, tokenizer: PreTrainedTokenizerBase, state: ResumeState | None
) -> dict[str, Any]:
    """Policy (resumed adapter if any), reference, frozen reward model, value model."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    kwargs = quantization_kwargs(cfg)
    source = str(state.checkpoint) if state and not cfg.lora.enabled else cfg.model.base_model
    policy = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    ref = None
    if not cfg.lora.enabled or cfg.model.ref_model:
        ref = AutoModelForCausalLM.from_pretrained(
            cfg.model.ref_model or cfg.model.base_model, **kwargs
        )
    seq_kwargs = {"num_labels": 1, "dtype": kwargs["dtype"]}
    reward = AutoModelForSequenceClassification.from_pretrained(
        cfg.model.reward_model, **seq_kwargs
    )
    value_source = str(state.value_model) if state else cfg.model.reward_model
    value = AutoModelForSequenceClassification.from_pretrained(value_source, **seq_kwargs)
    reward.requires_grad_(False).eval()
    if cfg.ppo.value_train_top_layers:
        freeze_below_top(value, cfg.ppo.value_train_top_layers)
    models = {"policy": policy, "ref_model": ref, "reward_model": reward, "value_model": value}
    for model in models.values():
        if model is not None:
            _set_pad(model, tokenizer)
    if state and cfg.lora.enabled:
        models["policy"] = PeftModel.from_pretrained(
            policy, str(state.checkpoint), is_trainable=True
        )
    return models


def _prepare(cfg: TrainConfig, data_dir: Path) -> Path:
    resolve_model_paths(cfg)
    if not cfg.model.reward_model:
        raise ConfigError(
            "'model.reward_model' is required for PPO (train one with `rlhf train rm`)"
        )
    if not Path(cfg.model.reward_model).exists():
        raise ConfigError(f"reward model {cfg.model.reward_model} does not exist")
    return output_dir(cfg, data_dir)


def train_ppo(
    cfg: TrainConfig, *, database_url: str, data_dir: Path, resume: bool = False
) -> RunResult:
    """Run (or resume) PPO until its step or time budget is spent."""
    out = _prepare(cfg, data_dir)
    setup_torch(cfg)
    recorder = RunRecorder(database_url)
    recorder.start(
        cfg, algorithm="ppo", out=out, reward_model=cfg.model.reward_model, resume=resume
    )
    registrar = RegistryCallback(recorder)
    state = latest_state(out) if resume else None
    start = state.step if state else 0
    if resume:
        added = register_missing(registrar, out, upto=start)
        if added:
            log.info("registered checkpoints found on disk: %s", added)
        drop_unresumable(registrar, out, after=start)
    elapsed = state.elapsed_seconds if state else 0.0
    if start >= cfg.run.max_steps or (cfg.run.max_seconds and elapsed >= cfg.run.max_seconds):
        status = "finished" if start >= cfg.run.max_steps else "stopped"
        recorder.finish(status)
        return RunResult(recorder.run_id, status, out, start)
    budget = BudgetCallback(
        max_steps=cfg.run.max_steps,
        max_seconds=cfg.run.max_seconds,
        start_step=start,
        raise_on_stop=True,
        prior_seconds=elapsed,
    )
    with recorder.outcome(), contextlib.suppress(BudgetReached):
        _run_trainer(cfg, out, state, start, [registrar], budget)
    recorder.finish(budget.status)
    return RunResult(recorder.run_id, budget.status, out, start)


def _run_trainer(
    cfg: TrainConfig,
    out: Path,
    state: ResumeState | None,
    start: int,
    callbacks: list[TrainerCallback],
    budget: BudgetCallback,
) -> None:
    from training import ppo_trl

    tokenizer = load_tokenizer(cfg.model.base_model)
    dataset = prompt_dataset(cfg, tokenizer)
    models = load_models(cfg, tokenizer, state)
    kl_coef = state.kl_coef if state else cfg.ppo.kl.coef
    controller = make_controller(
        kl_coef, adaptive=cfg.ppo.kl.adaptive, target=cfg.ppo.kl.target, horizon=cfg.ppo.kl.horizon
    )
    args = ppo_trl.make_args(cfg, out, cfg.run.max_steps - start, kl_coef)
    args.seed = cfg.run.seed + start  # a resumed run must not replay the same prompt order
    resume_cb = ResumeStateCallback(
        models["value_model"], out, cfg.run.keep_resume_states, budget.elapsed
    )
    trainer = ppo_trl.build_trainer(
        args=args,
        tokenizer=tokenizer,
        dataset=dataset,
        peft_config=lora_config(cfg, "CAUSAL_LM") if cfg.lora.enabled and state is None else None,
        # The controller counts global episodes (all processes), as Ziegler et al.'s horizon does.
        # Order matters at each save: resume state first, then registration (see
        # ResumeStateCallback), then the budget's stop.
        callbacks=[
            EarlySaveCallback(cfg.run.first_save),
            resume_cb,
            *callbacks,
            KLControlCallback(controller, global_batch(cfg)),
            budget,
        ],
        updates=cfg.run.max_steps - start,
        **models,
    )
    try:
        trainer.train()
    except BudgetReached:
        # TRL's loop cannot be told to stop, so BudgetCallback raises after the final save;
        # still end the training for the other callbacks (TensorBoard/W&B flush and close).
        trainer.callback_handler.on_train_end(trainer.args, trainer.state, trainer.control)
        raise
