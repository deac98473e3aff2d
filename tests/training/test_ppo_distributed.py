"""PPO under `accelerate launch --num_processes 2` (CPU, gloo) against the one-process run.

TRL divides `total_episodes` by the GLOBAL batch (per-device batch x processes), and the adaptive
KL controller must count global episodes too: two processes with per-device batch 2 must make the
same number of updates, save and register the same checkpoints (once, from the main process) and
move beta along the same trajectory as one process with batch 4.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from judging.data.models import Checkpoint, TrainingRun
from judging.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow

# Target far above any KL of a barely moved policy: the error clips at -0.2 and with horizon =
# global episodes per step (4), beta shrinks by 20% per step.
EXPECTED_BETAS = [0.1, 0.08, 0.064]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_config(
    tmp_path: Path, models: dict[str, Path], prompts: Path, name: str, batch_size: int
) -> Path:
    config = {
        "run": {
            "name": name,
            "output_dir": str(tmp_path / name),
            "max_steps": 3,
            "save_every": 1,
            "threads": 1,
        },
        "model": {"base_model": str(models["policy"]), "reward_model": str(models["reward"])},
        "data": {"prompts": str(prompts)},
        "optim": {"batch_size": batch_size, "learning_rate": 0.001},
        "ppo": {
            "response_length": 8,
            "num_ppo_epochs": 1,
            "local_rollout_forward_batch_size": batch_size,
            "kl": {"coef": 0.1, "adaptive": True, "target": 1000000, "horizon": 4},
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def launch(
    config: Path, pg_url: str, data_dir: Path, processes: int, *extra: str
) -> subprocess.CompletedProcess[str]:
    """`accelerate launch --multi_gpu --num_processes N -m cli.main train ppo ...` on CPU (gloo).

    `--cpu` alone picks accelerate's simple launcher, which starts ONE process whatever
    `--num_processes` says; torchrun (`--multi_gpu`) with ACCELERATE_USE_CPU=1 starts N and
    accelerate then sets up MULTI_CPU with the gloo backend.
    """
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "DATABASE_URL": pg_url,
        "RLHF_DATA_DIR": str(data_dir),
        "OMP_NUM_THREADS": "1",
        "ACCELERATE_USE_CPU": "1",
        "TRL_EXPERIMENTAL_SILENCE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        "-m",
        "cli.main",
        "train",
        "ppo",
        "--config",
        str(config),
        *extra,
    ]
    return subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900
    )


def _checkpoints(engine: Engine, name: str) -> tuple[TrainingRun, list[Checkpoint]]:
    with Session(engine, expire_on_commit=False) as session:
        run = session.scalar(select(TrainingRun).where(TrainingRun.name == name))
        assert run is not None
        return run, list(run.checkpoints)


def test_two_processes_match_one_process(
    tiny_models: dict[str, Path],
    prompt_file: Path,
    tmp_path: Path,
    pg_url: str,
    pg_engine: Engine,
    cleanup_runs: list[str],
) -> None:
    from training.config import load_config
    from training.ppo import train_ppo

    one = f"ppo-1p-{uuid.uuid4().hex[:8]}"
    two = f"ppo-2p-{uuid.uuid4().hex[:8]}"
    cleanup_runs.extend([one, two])
    cfg = load_config(_write_config(tmp_path, tiny_models, prompt_file, one, batch_size=4), [])
    train_ppo(cfg, database_url=pg_url, data_dir=tmp_path)

    # Two processes, per-device batch 2: the same 4 episodes per update. First 2 steps, then a
    # resume to 3, so the step/episode counters of a resumed multi-process run are covered too.
    config = _write_config(tmp_path, tiny_models, prompt_file, two, batch_size=2)
    first = launch(config, pg_url, tmp_path, 2, "--set", "run.max_steps=2")
    assert first.returncode == 0, first.stderr[-20000:]
    second = launch(config, pg_url, tmp_path, 2, "--resume")
    assert second.returncode == 0, second.stderr[-20000:]

    run_one, ckpts_one = _checkpoints(pg_engine, one)
    run_two, ckpts_two = _checkpoints(pg_engine, two)
    assert run_one.status == run_two.status == "finished"
    assert [c.step for c in ckpts_two] == [c.step for c in ckpts_one] == [0, 1, 2, 3]
    assert [c.kl_coef for c in ckpts_one[1:]] == pytest.approx(EXPECTED_BETAS)
    assert [c.kl_coef for c in ckpts_two[1:]] == pytest.approx(EXPECTED_BETAS)
    for ckpt in ckpts_two[1:]:
        assert ckpt.metrics["episode"] == ckpt.step * 4, ckpt.metrics
        # Lengths and truncation over both processes' rollouts (4 responses, 8 tokens at most).
        assert 1 <= ckpt.metrics["response_length_mean"] <= 8
        assert ckpt.metrics["truncation_rate"] * 4 == pytest.approx(
            round(ckpt.metrics["truncation_rate"] * 4)
        )
        assert ckpt.metrics["metrics_policy_step"] == ckpt.step - 1
        assert (Path(ckpt.path) / "adapter_model.safetensors").is_file()
        kl, non_score = ckpt.metrics["objective/kl"], ckpt.metrics["objective/non_score_reward"]
        assert non_score == pytest.approx(-ckpt.kl_coef * kl, abs=1e-6)
    out = tmp_path / two
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [
        f"checkpoint-{s}" for s in (1, 2, 3)
    ]
    # Only the main process registers: one log line per checkpoint across both launches.
    logs = first.stdout + first.stderr + second.stdout + second.stderr
    for step in (1, 2, 3):
        assert logs.count(f"(step {step})") == 1, step
