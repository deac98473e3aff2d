"""Reward model, SFT and DPO on tiny random models: they learn, save, report and register."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from judging.data.models import TrainingMetric, TrainingRun
from tests.training.conftest import PROMPTS
from training.config import load_config


def _pairs(path: Path, n: int, seed: int) -> Path:
    """Trivially separable pairs: chosen says 'sunshine', rejected 'thunder' (random lengths)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            words = " ".join(
                rng.choice(["the", "a", "day", "is", "bright"]) for _ in range(rng.randint(2, 6))
            )
            row = {
                "prompt": PROMPTS[i % len(PROMPTS)],
                "chosen": f"sunshine {words}",
                "rejected": f"thunder {words}",
            }
            handle.write(json.dumps(row) + "\n")
    return path


def _config(models: dict[str, Path], tmp_path: Path, names: list[str], prefix: str, *extra: str):  # type: ignore[no-untyped-def]
    name = f"{prefix}-test-{uuid.uuid4().hex[:8]}"
    names.append(name)
    overrides = [
        f"model.base_model={models['policy']}",
        f"data.preferences={_pairs(tmp_path / 'train.jsonl', 48, 1)}",
        f"data.heldout_preferences={_pairs(tmp_path / 'heldout.jsonl', 24, 2)}",
        f"run.output_dir={tmp_path / name}",
        "run.threads=1",
        "run.max_steps=2",
        "run.save_every=1",
        "optim.batch_size=4",
        "optim.learning_rate=0.001",
        *extra,
    ]
    return load_config(None, overrides, name=name)


def _run(engine: Engine, name: str) -> TrainingRun:
    session = Session(engine, expire_on_commit=False)
    run = session.scalar(select(TrainingRun).where(TrainingRun.name == name))
    assert run is not None
    _ = list(run.checkpoints)
    session.close()
    return run


def test_reward_model_learns_separable_preference(
    tiny_models: dict[str, Path],
    tmp_path: Path,
    pg_url: str,
    pg_engine: Engine,
    cleanup_runs: list[str],
) -> None:
    from training.reward import train_rm

    cfg = _config(
        tiny_models,
        tmp_path,
        cleanup_runs,
        "rm",
        "run.max_steps=60",
        "optim.num_epochs=5",
        "optim.batch_size=8",
        "lora.enabled=false",
    )
    result = train_rm(cfg, database_url=pg_url, data_dir=tmp_path)

    report = json.loads((result.output_dir / "report.json").read_text())["report"]
    assert report["pairs"] == 24
    assert report["accuracy"] > 0.9
    assert (result.output_dir / "report.md").read_text().startswith("# Reward model report")
    assert sum(b["count"] for b in report["calibration"]) == 48
    run = _run(pg_engine, cfg.run.name)
    assert run.algorithm == "rm" and run.status == "finished" and run.compute_spent_seconds > 0
    final = run.checkpoints[-1]
    assert final.step == result.steps and Path(final.path) == result.output_dir / "final"
    assert final.metrics["heldout/accuracy"] == report["accuracy"]
    assert (Path(final.path) / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("algorithm", "lora"),
    [("sft", True), ("dpo", True), ("dpo", False)],
    ids=["sft", "dpo", "dpo-full"],
)
def test_sft_and_dpo_run_two_steps_and_register(
    algorithm: str,
    lora: bool,
    tiny_models: dict[str, Path],
    tmp_path: Path,
    pg_url: str,
    pg_engine: Engine,
    cleanup_runs: list[str],
) -> None:
    from training.sft_dpo import train_dpo, train_sft

    cfg = _config(
        tiny_models, tmp_path, cleanup_runs, algorithm, f"lora.enabled={str(lora).lower()}"
    )
    train = train_sft if algorithm == "sft" else train_dpo
    result = train(cfg, database_url=pg_url, data_dir=tmp_path)

    assert result.status == "finished" and result.steps == 2
    run = _run(pg_engine, cfg.run.name)
    assert run.algorithm == algorithm
    assert [c.step for c in run.checkpoints] == [0, 1, 2]
    for ckpt in run.checkpoints[1:]:
        weights = "adapter_model.safetensors" if lora else "model.safetensors"
        assert (Path(ckpt.path) / weights).is_file()
        assert ckpt.compute_spent_seconds is not None and ckpt.compute_spent_seconds > 0
        assert "loss" in ckpt.metrics
    with Session(pg_engine) as session:
        names = set(
            session.scalars(select(TrainingMetric.name).where(TrainingMetric.run_id == run.id))
        )
    assert "loss" in names
