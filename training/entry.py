"""One entry point per algorithm, so the CLI stays free of torch imports."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from training.config import TrainConfig


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def train(
    algorithm: str, cfg: TrainConfig, *, database_url: str, data_dir: Path, resume: bool
) -> Any:
    """Dispatch to the trainer of `algorithm`; returns its result (status, output_dir)."""
    # `kill` (SIGTERM) must leave the run marked stopped, not stuck in `running`.
    signal.signal(signal.SIGTERM, _interrupt)
    if algorithm == "ppo":
        from training.ppo import train_ppo

        return train_ppo(cfg, database_url=database_url, data_dir=data_dir, resume=resume)
    if algorithm == "rm":
        from training.reward import train_rm

        return train_rm(cfg, database_url=database_url, data_dir=data_dir, resume=resume)
    from training.sft_dpo import train_dpo, train_sft

    runner = train_sft if algorithm == "sft" else train_dpo
    return runner(cfg, database_url=database_url, data_dir=data_dir, resume=resume)
