"""The checkpoint registry is idempotent on its natural keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from judging.data import registry
from judging.data.models import Checkpoint, TrainingMetric
from judging.errors import ConflictError, NotFoundError


def _folder(tmp_path: Path, name: str, content: bytes) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(content)
    return folder


def test_register_twice_updates_one_row(db_session: Session, tmp_path: Path) -> None:
    run = registry.start_run(db_session, name="ppo-a", algorithm="ppo", base_model="b", config={})
    folder = _folder(tmp_path, "checkpoint-4", b"v1")
    first = registry.register_checkpoint(
        db_session, run_id=run.id, step=4, path=folder, metrics={"objective/kl": 0.1}
    )
    (folder / "adapter_model.safetensors").write_bytes(b"v2, rewritten after a resume")
    second = registry.register_checkpoint(
        db_session,
        run_id=run.id,
        step=4,
        path=folder,
        metrics={"objective/kl": 0.2, "bad": float("nan")},
    )
    assert first.id == second.id
    assert second.metrics == {"objective/kl": 0.2}
    assert second.checksum == registry.directory_checksum(folder)[0]
    count = db_session.scalar(
        select(func.count()).select_from(Checkpoint).where(Checkpoint.run_id == run.id)
    )
    assert count == 1


def test_checksum_changes_with_content(tmp_path: Path) -> None:
    a = registry.directory_checksum(_folder(tmp_path, "a", b"same"))
    b = registry.directory_checksum(_folder(tmp_path, "b", b"same"))
    c = registry.directory_checksum(_folder(tmp_path, "c", b"different"))
    assert a == b and a[0] != c[0] and a[1] == 4


def test_metrics_upsert(db_session: Session) -> None:
    run = registry.start_run(db_session, name="ppo-b", algorithm="ppo", base_model="b", config={})
    registry.record_metrics(
        db_session, run_id=run.id, step=1, metrics={"objective/kl": 1.0, "lr": 1e-5}
    )
    registry.record_metrics(db_session, run_id=run.id, step=1, metrics={"objective/kl": 2.0})
    rows = db_session.execute(
        select(TrainingMetric.name, TrainingMetric.value).where(TrainingMetric.run_id == run.id)
    ).all()
    assert sorted(rows) == [("lr", 1e-5), ("objective/kl", 2.0)]


def test_run_name_clash_and_resume(db_session: Session) -> None:
    run = registry.start_run(db_session, name="dup", algorithm="ppo", base_model="b", config={})
    registry.finish_run(db_session, run, status="failed", error="boom")
    with pytest.raises(ConflictError, match="--resume"):
        registry.start_run(db_session, name="dup", algorithm="ppo", base_model="b", config={})
    resumed = registry.start_run(
        db_session, name="dup", algorithm="ppo", base_model="b", config={}, resume=True
    )
    assert resumed.id == run.id and resumed.status == "running" and resumed.error is None
    with pytest.raises(ConflictError, match="dpo"):
        registry.start_run(
            db_session, name="dup", algorithm="dpo", base_model="b", config={}, resume=True
        )


def test_missing_path_and_run(db_session: Session, tmp_path: Path) -> None:
    run = registry.start_run(db_session, name="ppo-c", algorithm="ppo", base_model="b", config={})
    with pytest.raises(NotFoundError, match="does not exist"):
        registry.register_checkpoint(db_session, run_id=run.id, step=1, path=tmp_path / "nope")
    with pytest.raises(NotFoundError, match="run 999999"):
        registry.register_checkpoint(db_session, run_id=999999, step=1, path=tmp_path)


def test_base_checkpoint_once(db_session: Session) -> None:
    run = registry.start_run(
        db_session, name="ppo-d", algorithm="ppo", base_model="models/x", config={}
    )
    a = registry.ensure_base_checkpoint(db_session, run)
    b = registry.ensure_base_checkpoint(db_session, run)
    assert a.id == b.id and a.step == 0 and a.kind == "base" and a.path == "models/x"
