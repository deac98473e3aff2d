"""PPO seconds per step and peak RSS for the CPU config, on a few steps.

    .venv/bin/python bench/bench_ppo.py [--steps 4] [--config training/configs/ppo_cpu.yaml]

Runs against a throw-away SQLite database and output folder. Seconds per step are read from the
compute recorded at consecutive checkpoints (save_every=1), so model loading and the first step's
warm-up are excluded. Uses the trained reward model if present, else the base model with a fresh
scalar head (same cost, meaningless rewards).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description="PPO CPU benchmark")
    parser.add_argument("--config", default="training/configs/ppo_cpu.yaml")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    from judging.data.migrate import upgrade
    from training.config import load_config
    from training.ppo import train_ppo

    tmp = Path(tempfile.mkdtemp(prefix="bench-ppo-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    upgrade(url)
    reward = Path("var/runs/rm-smollm2-cpu/final")
    overrides = [
        f"run.max_steps={args.steps}",
        "run.save_every=1",
        "run.max_seconds=0",
        f"run.threads={args.threads}",
        f"run.output_dir={tmp / 'out'}",
        f"model.reward_model={reward if reward.exists() else 'var/models/SmolLM2-135M-Instruct'}",
        *args.overrides,
    ]
    cfg = load_config(args.config, overrides, name=f"bench-ppo-{os.getpid()}")
    started = time.monotonic()
    train_ppo(cfg, database_url=url, data_dir=tmp)
    total = time.monotonic() - started
    per_step = _seconds_per_step(url, cfg.run.name)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        f"config={args.config} steps={args.steps} threads={args.threads} "
        f"batch={cfg.optim.batch_size} response_length={cfg.ppo.response_length}"
    )
    print(
        f"ppo_seconds_per_step={per_step:.1f} total_seconds={total:.1f} peak_rss_gb={peak_gb:.2f}"
    )
    print(f"load_average={os.getloadavg()[0]:.2f}")


def _seconds_per_step(url: str, name: str) -> float:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from judging.data.db import make_engine
    from judging.data.models import Checkpoint, TrainingRun

    with Session(make_engine(url)) as session:
        rows = session.execute(
            select(Checkpoint.step, Checkpoint.compute_spent_seconds)
            .join(TrainingRun)
            .where(TrainingRun.name == name, Checkpoint.step > 0)
            .order_by(Checkpoint.step)
        ).all()
    (s0, c0), (s1, c1) = rows[0], rows[-1]
    return (c1 - c0) / max(s1 - s0, 1)


if __name__ == "__main__":
    main()
