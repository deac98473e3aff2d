"""PPO killed (SIGKILL) at each dangerous moment of a save, then resumed: registry, files and
evaluations must agree; the time budget counts across resumes.

The kill comes from the process itself (`RLHF_TEST_CRASH_AT`, see `training.callbacks`), at:
`saved` (checkpoint folder written, nothing else), `resume_state` (resume state written, not
registered) and `registered` (registered; with the old order this was before the resume state).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from judging.data.models import Checkpoint, Evaluation, Generation, Prompt, TrainingRun
from judging.data.prompts import PromptRecord, store_prompt_set
from judging.data.registry import directory_checksum
from judging.evaluation.queue import ensure_evaluations
from judging.settings import PROJECT_ROOT
from training.config import load_config

pytestmark = pytest.mark.slow


def _config_file(tmp_path: Path, models: dict[str, Path], prompts: Path, name: str) -> Path:
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
        "optim": {"batch_size": 4, "learning_rate": 0.001},
        "ppo": {"response_length": 8, "num_ppo_epochs": 1, "local_rollout_forward_batch_size": 4},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _train_until_killed(config: Path, pg_url: str, data_dir: Path, point: str) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "DATABASE_URL": pg_url,
        "RLHF_DATA_DIR": str(data_dir),
        "OMP_NUM_THREADS": "1",
        "TRL_EXPERIMENTAL_SILENCE": "1",
        "RLHF_TEST_CRASH_AT": point,
    }
    command = [sys.executable, "-m", "cli.main", "train", "ppo", "--config", str(config)]
    done = subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-4000:]


def _evaluate_registered(engine: Engine, name: str) -> None:
    """What a worker would have done meanwhile: a finished evaluation of every trained checkpoint,
    remembering the checksum of the files it evaluated."""
    with Session(engine) as session, session.begin():
        run = session.scalar(select(TrainingRun).where(TrainingRun.name == name))
        assert run is not None
        prompt_set = store_prompt_set(
            session,
            name=f"heldout-{name}",
            split="heldout",
            records=[PromptRecord("p1", "hi")],
            source=None,
        )
        prompt = session.scalar(select(Prompt).where(Prompt.prompt_set_id == prompt_set.id))
        assert prompt is not None
        trained = [c for c in run.checkpoints if c.kind == "trained"]
        ensure_evaluations(
            session, prompt_set_id=prompt_set.id, checkpoint_ids=[c.id for c in trained]
        )
        for checkpoint in trained:
            evaluation = session.scalar(
                select(Evaluation).where(Evaluation.checkpoint_id == checkpoint.id)
            )
            assert evaluation is not None
            evaluation.status, evaluation.summary, evaluation.flags = "done", {"n": 1}, []
            evaluation.config = {"checksum": checkpoint.checksum}
            session.add(
                Generation(
                    checkpoint_id=checkpoint.id,
                    prompt_id=prompt.id,
                    text="response",
                    token_count=1,
                    finish_reason="stop",
                    backend="transformers",
                )
            )


def _assert_consistent(engine: Engine, name: str, out: Path) -> None:
    with Session(engine) as session:
        run = session.scalar(select(TrainingRun).where(TrainingRun.name == name))
        assert run is not None and run.status == "finished"
        trained = [c for c in run.checkpoints if c.kind == "trained"]
        assert [c.step for c in trained] == [1, 2, 3]
        on_disk = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
        assert on_disk == [1, 2, 3]
        for checkpoint in trained:
            assert directory_checksum(checkpoint.path)[0] == checkpoint.checksum, checkpoint.step
            for evaluation in session.scalars(
                select(Evaluation).where(Evaluation.checkpoint_id == checkpoint.id)
            ):
                # An evaluation that stands was made of the files now registered: no registered
                # (evaluated) checkpoint was retrained and overwritten by the resume.
                assert evaluation.status == "done", checkpoint.step
                assert evaluation.config["checksum"] == checkpoint.checksum, checkpoint.step
                generations = session.scalar(
                    select(func.count())
                    .select_from(Generation)
                    .where(Generation.checkpoint_id == checkpoint.id)
                )
                assert generations == 1
    assert (out / "resume" / "step-3" / "state.json").is_file()


@pytest.mark.parametrize("point", ["saved:2", "resume_state:2", "registered:2"])
def test_kill_during_save_then_resume(
    point: str,
    tiny_models: dict[str, Path],
    prompt_file: Path,
    tmp_path: Path,
    pg_url: str,
    pg_engine: Engine,
    cleanup_runs: list[str],
) -> None:
    from training.ppo import train_ppo

    name = f"ppo-crash-{uuid.uuid4().hex[:8]}"
    cleanup_runs.append(name)
    config = _config_file(tmp_path, tiny_models, prompt_file, name)
    _train_until_killed(config, pg_url, tmp_path, point)
    out = tmp_path / name
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()  # killed after the save
    _evaluate_registered(pg_engine, name)

    result = train_ppo(load_config(config, []), database_url=pg_url, data_dir=tmp_path, resume=True)

    assert result.status == "finished"
    _assert_consistent(pg_engine, name, out)


def test_time_budget_counts_across_resumes(
    tiny_models: dict[str, Path],
    prompt_file: Path,
    tmp_path: Path,
    pg_url: str,
    pg_engine: Engine,
    cleanup_runs: list[str],
) -> None:
    from training.ppo import train_ppo

    name = f"ppo-budget-{uuid.uuid4().hex[:8]}"
    cleanup_runs.append(name)
    config = _config_file(tmp_path, tiny_models, prompt_file, name)
    first = train_ppo(
        load_config(config, ["run.max_steps=2"]), database_url=pg_url, data_dir=tmp_path
    )
    state = json.loads((first.output_dir / "resume" / "step-2" / "state.json").read_text())
    spent = float(state["elapsed_seconds"])
    assert spent > 0

    # The budget was already spent before the crash/restart: no further step may run.
    overrides = ["run.max_steps=5", f"run.max_seconds={spent * 0.9}"]
    result = train_ppo(
        load_config(config, overrides), database_url=pg_url, data_dir=tmp_path, resume=True
    )

    assert result.status == "stopped"
    with Session(pg_engine) as session:
        steps = session.scalars(
            select(Checkpoint.step).join(TrainingRun).where(TrainingRun.name == name)
        )
        assert sorted(steps) == [0, 1, 2]
        run = session.scalar(select(TrainingRun).where(TrainingRun.name == name))
        assert run is not None and run.status == "stopped"
