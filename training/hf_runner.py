"""The loop shared by Trainer-based recipes (RM, SFT, DPO): DB run, budget, status."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from training.callbacks import BudgetCallback, EarlySaveCallback, RegistryCallback
from training.common import RunRecorder, output_dir, resolve_model_paths, setup_torch
from training.config import TrainConfig
from training.resume import register_missing

log = logging.getLogger(__name__)

# build(cfg, out, steps, callbacks) -> a ready transformers Trainer
TrainerFactory = Callable[[TrainConfig, Path, int, list[TrainerCallback]], Any]
# after(trainer, registrar) runs once training stopped (final save, reports)
AfterTraining = Callable[[Any, RegistryCallback], None]


@dataclass
class HFRunResult:
    run_id: int
    status: str
    output_dir: Path
    steps: int


def planned_steps(cfg: TrainConfig, examples: int) -> int:
    """Optimizer steps for `num_epochs` over the data, capped by `run.max_steps`."""
    per_step = cfg.optim.batch_size * cfg.optim.gradient_accumulation_steps
    epoch_steps = max(1, math.ceil(examples / per_step))
    return max(1, min(cfg.run.max_steps, math.ceil(epoch_steps * cfg.optim.num_epochs)))


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def common_args(cfg: TrainConfig, out: Path, steps: int, *, save: bool) -> dict[str, Any]:
    """TrainingArguments every recipe shares; the checkpoint folder holds weights only."""
    return {
        "output_dir": str(out),
        "per_device_train_batch_size": cfg.optim.batch_size,
        "gradient_accumulation_steps": cfg.optim.gradient_accumulation_steps,
        "learning_rate": cfg.optim.learning_rate,
        "lr_scheduler_type": cfg.optim.lr_scheduler_type,
        "warmup_steps": cfg.optim.warmup_ratio,
        "max_steps": steps,
        "logging_steps": cfg.run.logging_steps,
        "save_strategy": "steps" if save else "no",
        "save_steps": cfg.run.save_every,
        "save_only_model": True,
        "report_to": [] if cfg.run.report_to == "none" else [cfg.run.report_to],
        "bf16": cfg.model.bf16,
        # bf16 autocast on a CPU with bf16 units (AVX512-BF16, AMX) is ~3x fp32 matmuls; the
        # Trainer only allows it there when told the run is on the CPU.
        "use_cpu": not _cuda_available(),
        "seed": cfg.run.seed,
        "gradient_checkpointing": cfg.model.gradient_checkpointing,
    }


def run_registered(
    cfg: TrainConfig,
    *,
    algorithm: str,
    database_url: str,
    data_dir: Path,
    resume: bool,
    build: TrainerFactory,
    examples: int,
    after: AfterTraining | None = None,
    save_checkpoints: bool = True,
) -> HFRunResult:
    """Start (or reopen) the run, train under the budget, register checkpoints, set the status."""
    resolve_model_paths(cfg)
    out = output_dir(cfg, data_dir)
    setup_torch(cfg)
    recorder = RunRecorder(database_url)
    recorder.start(cfg, algorithm=algorithm, out=out, reward_model=None, resume=resume)
    registrar = RegistryCallback(recorder)
    if resume:
        # transformers Trainers cannot resume from weights-only checkpoints: a resumed run
        # registers what the crash left unregistered, then trains again from the start.
        register_missing(registrar, out)
    steps = planned_steps(cfg, examples)
    budget = BudgetCallback(
        max_steps=steps, max_seconds=cfg.run.max_seconds, raise_on_stop=False, save=save_checkpoints
    )
    with recorder.outcome():
        early = [EarlySaveCallback(cfg.run.first_save)] if save_checkpoints else []
        trainer = build(cfg, out, steps, [*early, registrar, budget])
        trainer.train()
        if after is not None:
            after(trainer, registrar)
    recorder.finish(budget.status)
    return HFRunResult(recorder.run_id, budget.status, out, steps)
