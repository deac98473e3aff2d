"""PPO on tiny random models: checkpoints, metrics, resume, budget and KL control reach the DB."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from judging.data.models import Checkpoint, TrainingMetric, TrainingRun
from training.config import TrainConfig, load_config


def _config(
    models: dict[str, Path], prompts: Path, tmp_path: Path, names: list[str], *extra: str
) -> TrainConfig:
    name = f"ppo-test-{uuid.uuid4().hex[:8]}"
    names.append(name)
    overrides = [
        f"model.base_model={models['policy']}",
        f"model.reward_model={models['reward']}",
        f"data.prompts={prompts}",
        f"run.output_dir={tmp_path / name}",
        "run.max_steps=2",
        "run.save_every=1",
        "run.threads=1",
        "optim.batch_size=4",
        "optim.learning_rate=0.001",
        "ppo.response_length=8",
        "ppo.num_ppo_epochs=1",
        "ppo.local_rollout_forward_batch_size=4",
        *extra,
    ]
    return load_config(None, overrides, name=name)


def _checkpoints(engine: Engine, name: str) -> list[Checkpoint]:
    with Session(engine) as session:
        run = session.scalar(select(TrainingRun).where(TrainingRun.name == name))
        assert run is not None
        return list(run.checkpoints)


def _metric_rows(engine: Engine, name: str) -> list[tuple[int, str]]:
    with Session(engine) as session:
        rows = session.execute(
            select(TrainingMetric.step, TrainingMetric.name)
            .join(TrainingRun)
            .where(TrainingRun.name == name)
        )
        return [(step, metric) for step, metric in rows]


def _adapter_weights(path: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return dict(load_file(str(path / "adapter_model.safetensors")))


def test_ppo_registers_checkpoints_with_metrics(
    tiny_models: dict[str, Path],
    prompt_file: Path,
    tmp_path: Path,
    pg_url: str,
    pg_engine: Engine,
    cleanup_runs: list[str],
) -> None:
    import torch

    from training.ppo import train_ppo

    cfg = _config(tiny_models, prompt_file, tmp_path, cleanup_runs, "run.max_steps=3")
    result = train_ppo(cfg, database_url=pg_url, data_dir=tmp_path)

    assert result.status == "finished"
    checkpoints = _checkpoints(pg_engine, cfg.run.name)
    assert [c.step for c in checkpoints] == [0, 1, 2, 3]
    assert checkpoints[0].kind == "base"
    for ckpt in checkpoints[1:]:
        assert (Path(ckpt.path) / "adapter_config.json").is_file()
        assert ckpt.checksum and ckpt.compute_spent_seconds and ckpt.compute_spent_seconds > 0
        for key in (
            "objective/kl",
            "objective/scores",
            "objective/entropy",
            "loss/policy_avg",
            "response_length_mean",
            "truncation_rate",
        ):
            assert key in ckpt.metrics, key
        assert 1 <= ckpt.metrics["response_length_mean"] <= 8
        assert ckpt.kl_coef == pytest.approx(0.05)
        # What the metrics describe: the step they were logged at, whose rollouts came from
        # the policy before that update (the previous checkpoint); and the RM score without
        # TRL's missing-EOS penalty (1.0 per response without EOS, the default).
        assert ckpt.metrics["metrics_step"] == ckpt.step
        assert ckpt.metrics["metrics_policy_step"] == ckpt.step - 1
        penalised, truncated = ckpt.metrics["objective/scores"], ckpt.metrics["truncation_rate"]
        assert ckpt.metrics["rm_score_mean"] == pytest.approx(penalised + 1.0 * truncated)
    first = _adapter_weights(Path(checkpoints[1].path))
    last = _adapter_weights(Path(checkpoints[3].path))
    # LoRA B starts at zero: any non-zero B (or a changed A) means the policy moved.
    assert any(not torch.equal(first[k], last[k]) for k in first)  # type: ignore[arg-type]
    rows = _metric_rows(pg_engine, cfg.run.name)
    assert {s for s, _ in rows} == {1, 2, 3}
    assert (2, "objective/kl") in rows and (2, "response_length_mean") in rows
    assert not list((Path(checkpoints[1].path)).glob("optimizer.pt"))


def test_resume_continues_without_duplicates(
    tiny_models: dict[str, Path],
    prompt_file: Path,
    tmp_path: Path,
    pg_url: str,
    pg_engine: Engine,
    cleanup_runs: list[str],
) -> None:
    from training.ppo import train_ppo

    cfg = _config(tiny_models, prompt_file, tmp_path, cleanup_runs)
    train_ppo(cfg, database_url=pg_url, data_dir=tmp_path)
    # Simulate a crash between save and register: step 2's folder exists, its row does not.
    with Session(pg_engine) as session, session.begin():
        row = session.scalar(
            select(Checkpoint)
            .join(TrainingRun)
            .where(TrainingRun.name == cfg.run.name, Checkpoint.step == 2)
        )
        assert row is not None
        session.delete(row)
    assert [c.step for c in _checkpoints(pg_engine, cfg.run.name)] == [0, 1]

    resumed = load_config(None, [f"{k}={v}" for k, v in _flat(cfg).items()] + ["run.max_steps=4"])
    result = train_ppo(resumed, database_url=pg_url, data_dir=tmp_path, resume=True)

    assert result.start_step == 2
    steps = [c.step for c in _checkpoints(pg_engine, cfg.run.name)]
    assert steps == [0, 1, 2, 3, 4]
    rows = _metric_rows(pg_engine, cfg.run.name)
    assert len(rows) == len(set(rows))
    assert {s for s, _ in rows} == {1, 2, 3, 4}
    with Session(pg_engine) as session:
        runs = session.scalar(
            select(func.count()).select_from(TrainingRun).where(TrainingRun.name == cfg.run.name)
        )
        assert runs == 1
    assert (result.output_dir / "resume" / "step-4" / "value" / "config.json").is_file()
    assert not (result.output_dir / "resume" / "step-2").exists()  # keep_resume_states=1


def test_time_budget_stops_with_final_checkpoint(
    tiny_models: dict[str, Path],
    prompt_file: Path,
    tmp_path: Path,
    pg_url: str,
    pg_engine: Engine,
    cleanup_runs: list[str],
) -> None:
    from training.ppo import train_ppo

    cfg = _config(
        tiny_models,
        prompt_file,
        tmp_path,
        cleanup_runs,
        "run.max_steps=50",
        "run.max_seconds=0.01",
        "run.save_every=10",
        "ppo.value_train_top_layers=1",
    )
    result = train_ppo(cfg, database_url=pg_url, data_dir=tmp_path)

    assert result.status == "stopped"
    steps = [c.step for c in _checkpoints(pg_engine, cfg.run.name)]
    assert steps == [0, 1]
    assert (result.output_dir / "checkpoint-1" / "adapter_model.safetensors").is_file()
    with Session(pg_engine) as session:
        run = session.scalar(select(TrainingRun).where(TrainingRun.name == cfg.run.name))
        assert run is not None and run.status == "stopped" and run.compute_spent_seconds > 0


def test_adaptive_kl_changes_the_coefficient_trl_uses(
    tiny_models: dict[str, Path],
    prompt_file: Path,
    tmp_path: Path,
    pg_url: str,
    pg_engine: Engine,
    cleanup_runs: list[str],
) -> None:
    from training.ppo import train_ppo

    # A target far above any KL of a barely moved policy: the error clips at -0.2 and with
    # horizon = episodes per step (4) beta shrinks by 20% per step: 0.1, 0.08, 0.064.
    cfg = _config(
        tiny_models,
        prompt_file,
        tmp_path,
        cleanup_runs,
        "run.max_steps=3",
        "ppo.kl.adaptive=true",
        "ppo.kl.target=1000000",
        "ppo.kl.horizon=4",
        "ppo.kl.coef=0.1",
    )
    train_ppo(cfg, database_url=pg_url, data_dir=tmp_path)

    checkpoints = _checkpoints(pg_engine, cfg.run.name)[1:]
    assert [c.kl_coef for c in checkpoints] == pytest.approx([0.1, 0.08, 0.064])
    # The coefficient in force is the one TRL applied: non_score_reward = -beta * KL.
    for ckpt in checkpoints:
        kl, non_score = ckpt.metrics["objective/kl"], ckpt.metrics["objective/non_score_reward"]
        assert non_score == pytest.approx(-ckpt.kl_coef * kl, abs=1e-6)


def _flat(cfg: TrainConfig) -> dict[str, object]:
    out: dict[str, object] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        elif not isinstance(value, list):
            out[prefix.rstrip(".")] = value

    walk("", cfg.to_dict())
    return out


def test_full_finetuning_saves_full_checkpoints_and_resumes(
    tiny_models: dict[str, Path],
    prompt_file: Path,
    tmp_path: Path,
    pg_url: str,
    pg_engine: Engine,
    cleanup_runs: list[str],
) -> None:
    from training.ppo import train_ppo

    extra = ("lora.enabled=false", "run.max_steps=1")
    cfg = _config(tiny_models, prompt_file, tmp_path, cleanup_runs, *extra)
    train_ppo(cfg, database_url=pg_url, data_dir=tmp_path)
    resumed = load_config(None, [f"{k}={v}" for k, v in _flat(cfg).items()] + ["run.max_steps=2"])
    result = train_ppo(resumed, database_url=pg_url, data_dir=tmp_path, resume=True)

    assert result.start_step == 1
    checkpoints = _checkpoints(pg_engine, cfg.run.name)
    assert [c.step for c in checkpoints] == [0, 1, 2]
    for ckpt in checkpoints[1:]:
        assert (Path(ckpt.path) / "model.safetensors").is_file()
        assert (Path(ckpt.path) / "config.json").is_file()


def _tensorboard_tags(folder: Path) -> set[str]:
    """Scalar tags in TensorBoard event files (TFRecord framing: length, crc, data, crc)."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    tags: set[str] = set()
    for path in folder.rglob("events.out.tfevents*"):
        data = path.read_bytes()
        offset = 0
        while offset + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            record = data[offset + 12 : offset + 12 + length]
            offset += 12 + length + 4
            event = Event.FromString(record)
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_tensorboard_event_files_offline(
    tiny_models: dict[str, Path],
    prompt_file: Path,
    tmp_path: Path,
    pg_url: str,
    pg_engine: Engine,
    cleanup_runs: list[str],
) -> None:
    pytest.importorskip("tensorboardX")
    from training.ppo import train_ppo

    cfg = _config(
        tiny_models,
        prompt_file,
        tmp_path,
        cleanup_runs,
        "run.max_steps=1",
        "run.report_to=tensorboard",
    )
    result = train_ppo(cfg, database_url=pg_url, data_dir=tmp_path)

    tags = _tensorboard_tags(result.output_dir / "runs")
    assert {"train/objective/kl", "train/objective/kl_coef", "train/response_length_mean"} <= tags
    # The registry stays the source of truth: the same step is in the database.
    assert (1, "objective/kl") in _metric_rows(pg_engine, cfg.run.name)


def test_first_save_registers_an_early_checkpoint_off_the_save_every_grid(
    tiny_models: dict[str, Path],
    prompt_file: Path,
    tmp_path: Path,
    pg_url: str,
    pg_engine: Engine,
    cleanup_runs: list[str],
) -> None:
    """`run.first_save` puts a checkpoint on the dashboard after one step (the demo's first
    checkpoint within minutes), and the steps saved are the ones `saved_steps` plans for."""
    from training.config import saved_steps
    from training.ppo import train_ppo

    cfg = _config(
        tiny_models,
        prompt_file,
        tmp_path,
        cleanup_runs,
        "run.max_steps=5",
        "run.save_every=3",
        "run.first_save=1",
        "ppo.value_train_top_layers=1",
    )
    result = train_ppo(cfg, database_url=pg_url, data_dir=tmp_path)

    assert result.status == "finished"
    steps = [c.step for c in _checkpoints(pg_engine, cfg.run.name)]
    assert steps == [0, 1, 3, 5]
    assert steps[1:] == saved_steps(cfg.run)


def test_saved_steps_plans_the_grid_the_last_step_and_the_first_save() -> None:
    from training.config import RunSection, saved_steps

    assert saved_steps(RunSection(max_steps=20, save_every=4)) == [4, 8, 12, 16, 20]
    assert saved_steps(RunSection(max_steps=20, save_every=5, first_save=1)) == [1, 5, 10, 15, 20]
    assert saved_steps(RunSection(max_steps=7, save_every=3, first_save=3)) == [3, 6, 7]
    assert saved_steps(RunSection(max_steps=4, save_every=10, first_save=9)) == [4]
