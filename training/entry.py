"""One entry point per algorithm, so the CLI stays free of torch imports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from judging.stopping import stop_on_signals
from training.config import TrainConfig


def train(
    algorithm: str, cfg: TrainConfig, *, database_url: str, data_dir: Path, resume: bool
) -> Any:
    """Dispatch to the trainer of `algorithm`; returns its result (status, output_dir)."""
    # `kill` (SIGTERM) must leave the run marked stopped, not stuck in `running`.
    stop_on_signals()
    if algorithm == "ppo":
        from training.ppo import train_ppo

        return train_ppo(cfg, database_url=database_url, data_dir=data_dir, resume=resume)
    if algorithm == "rm":
        from training.reward import train_rm

        return train_rm(cfg, database_url=database_url, data_dir=data_dir, resume=resume)
    from training.sft_dpo import train_dpo, train_sft

    runner = train_sft if algorithm == "sft" else train_dpo
    return runner(cfg, database_url=database_url, data_dir=data_dir, resume=resume)
