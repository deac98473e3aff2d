"""`rlhf registry watch`: complete checkpoint folders of an external engine reach the registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from judging.data import registry
from judging.data.models import TrainingRun
from judging.data.watch import complete_folders, register_new
from judging.settings import PROJECT_ROOT


def _age(folder: Path, seconds: float) -> None:
    past = time.time() - seconds
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (past, past))


def _hf_folder(folder: Path, *, weights: str = "model.safetensors", old: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / weights).write_bytes(b"weights")
    if old:
        _age(folder, 120)
    return folder


def test_only_complete_settled_folders(tmp_path: Path) -> None:
    _hf_folder(tmp_path / "checkpoint-10")
    _hf_folder(tmp_path / "global_step_20" / "actor" / "huggingface")
    _hf_folder(tmp_path / "global_step20_hf", weights="adapter_model.safetensors")
    _hf_folder(tmp_path / "checkpoint-30", old=False)  # still being written
    (tmp_path / "checkpoint-40").mkdir()  # no weights yet
    sharded = tmp_path / "step-50"
    sharded.mkdir()
    (sharded / "config.json").write_text("{}")
    (sharded / "model-00001-of-00002.safetensors").write_bytes(b"a")
    index = {
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        }
    }
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    _age(sharded, 120)  # one shard missing
    _hf_folder(tmp_path / "notes")

    assert [f.step for f in complete_folders(tmp_path, settle_s=30)] == [10, 20]
    verl = complete_folders(tmp_path, subdir="actor/huggingface", settle_s=30)
    assert [f.step for f in verl] == [20]
    assert verl[0].path.name == "huggingface"


def test_register_new_is_idempotent_and_notices_changes(
    db_session: Session, tmp_path: Path
) -> None:
    run = registry.start_run(
        db_session, name=f"ext-{uuid.uuid4().hex[:6]}", algorithm="ppo", base_model="b", config={}
    )
    first = _hf_folder(tmp_path / "checkpoint-1")
    assert register_new(db_session, run_id=run.id, root=tmp_path) == [1]
    assert register_new(db_session, run_id=run.id, root=tmp_path) == []
    _hf_folder(tmp_path / "checkpoint-2")
    assert register_new(db_session, run_id=run.id, root=tmp_path) == [2]

    (first / "model.safetensors").write_bytes(b"retrained")
    _age(first, 120)
    assert register_new(db_session, run_id=run.id, root=tmp_path) == [1]
    db_session.expire(run)
    checkpoint = next(c for c in run.checkpoints if c.step == 1)
    assert checkpoint.checksum == registry.directory_checksum(first)[0]
    assert checkpoint.size_bytes == len(b"retrained") + len(b"{}")


def test_cli_watch_once(pg_url: str, pg_engine: Engine, tmp_path: Path) -> None:
    name = f"ext-cli-{uuid.uuid4().hex[:6]}"
    saves = tmp_path / "saves"
    _hf_folder(saves / "checkpoint-100")
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "DATABASE_URL": pg_url}
    command = [sys.executable, "-m", "cli.main", "registry", "watch", str(saves), "--run", name]

    missing = subprocess.run([*command, "--once"], env=env, capture_output=True, text=True)
    assert missing.returncode == 1
    assert "does not exist; pass --base-model" in missing.stderr

    done = subprocess.run(
        [*command, "--once", "--base-model", "base/path"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "registered step 100" in done.stdout
    with Session(pg_engine) as session:
        run = session.scalar(select(TrainingRun).where(TrainingRun.name == name))
        assert run is not None and run.algorithm == "ppo"
        assert [(c.step, c.kind) for c in run.checkpoints] == [(0, "base"), (100, "trained")]
        session.execute(delete(TrainingRun).where(TrainingRun.name == name))
        session.commit()
