"""Reward-model training time (and held-out accuracy) for the CPU config.

    .venv/bin/python bench/bench_rm.py [--steps 20] [--config training/configs/rm_cpu.yaml]

Runs against a throw-away SQLite database and output folder; needs data/preferences/.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description="RM CPU benchmark")
    parser.add_argument("--config", default="training/configs/rm_cpu.yaml")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    from judging.data.migrate import upgrade
    from training.config import load_config
    from training.reward import train_rm

    tmp = Path(tempfile.mkdtemp(prefix="bench-rm-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    upgrade(url)
    overrides = [
        f"run.max_steps={args.steps}",
        "run.max_seconds=0",
        f"run.threads={args.threads}",
        f"run.output_dir={tmp / 'out'}",
        *args.overrides,
    ]
    cfg = load_config(args.config, overrides, name=f"bench-rm-{os.getpid()}")
    started = time.monotonic()
    result = train_rm(cfg, database_url=url, data_dir=tmp)
    total = time.monotonic() - started
    report = json.loads((result.output_dir / "report.json").read_text())["report"]
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        f"config={args.config} steps={result.steps} batch={cfg.optim.batch_size} "
        f"threads={args.threads}"
    )
    train_seconds = _train_runtime(url, cfg.run.name)
    print(
        f"rm_train_seconds={train_seconds:.1f} seconds_per_step={train_seconds / result.steps:.2f} "
        f"total_seconds_with_loading_and_report={total:.1f} peak_rss_gb={peak_gb:.2f}"
    )
    print(
        f"heldout_accuracy={report['accuracy']:.3f} pairs={report['pairs']} "
        f"reward_length_pearson={report['reward_length_pearson']}"
    )
    print(f"load_average={os.getloadavg()[0]:.2f}")


def _train_runtime(url: str, name: str) -> float:
    """transformers' own `train_runtime` (the optimisation loop only), as logged to the DB."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from judging.data.db import make_engine
    from judging.data.models import TrainingMetric, TrainingRun

    with Session(make_engine(url)) as session:
        value = session.scalar(
            select(TrainingMetric.value)
            .join(TrainingRun)
            .where(TrainingRun.name == name, TrainingMetric.name == "train_runtime")
        )
    return float(value or 0.0)


if __name__ == "__main__":
    main()
