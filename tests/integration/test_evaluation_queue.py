"""The evaluation queue: idempotent job creation, one claim per job under races, stale takeover."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from judging.data import registry
from judging.data.db import Base, make_engine, make_session_factory
from judging.data.models import Evaluation
from judging.data.prompts import PromptRecord, store_prompt_set
from judging.evaluation.queue import claim_next, ensure_evaluations, mark_failed, requeue


def _setup(session: Session, tmp_path: Path, checkpoints: int = 1) -> tuple[int, list[int]]:
    folder = tmp_path / "ckpt"
    folder.mkdir(exist_ok=True)
    (folder / "adapter_config.json").write_text("{}")
    run = registry.start_run(
        session, name=f"q-{tmp_path.name}", algorithm="ppo", base_model=str(folder), config={}
    )
    ids = [registry.ensure_base_checkpoint(session, run).id]
    ids += [
        registry.register_checkpoint(session, run_id=run.id, step=s, path=folder).id
        for s in range(10, 10 * checkpoints, 10)
    ]
    prompt_set = store_prompt_set(
        session,
        name=f"set-{tmp_path.name}",
        split="heldout",
        records=[PromptRecord("a", "hi")],
        source=None,
    )
    return prompt_set.id, ids


def _race(factory: sessionmaker[Session], prompt_set_id: int, workers: int = 2) -> list[int | None]:
    barrier = threading.Barrier(workers)
    claimed: list[int | None] = [None] * workers

    def work(index: int) -> None:
        with factory() as session:
            barrier.wait()
            evaluation = claim_next(session, worker=f"w{index}", prompt_set_id=prompt_set_id)
            claimed[index] = evaluation.id if evaluation else None

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return claimed


def test_two_workers_racing_on_postgres_get_one_job(committed_factory: Any, tmp_path: Path) -> None:
    with committed_factory() as session:
        prompt_set_id, _ = _setup(session, tmp_path)
        ensure_evaluations(session, prompt_set_id=prompt_set_id)
        session.commit()
    for _ in range(5):
        claimed = _race(committed_factory, prompt_set_id)
        assert sum(c is not None for c in claimed) == 1
        with committed_factory() as session:  # put the job back for the next round
            evaluation = session.get(Evaluation, next(c for c in claimed if c))
            assert evaluation is not None and evaluation.status == "running"
            evaluation.status = "pending"
            session.commit()


def test_two_workers_racing_on_sqlite_get_one_job(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    with factory() as session:
        prompt_set_id, _ = _setup(session, tmp_path)
        ensure_evaluations(session, prompt_set_id=prompt_set_id)
        session.commit()
    for _ in range(5):
        claimed = _race(factory, prompt_set_id)
        assert sum(c is not None for c in claimed) == 1
        with factory() as session:
            session.execute(Evaluation.__table__.update().values(status="pending"))
            session.commit()
    engine.dispose()


def test_jobs_are_created_once_base_first_and_failures_requeue(
    db_session: Session, tmp_path: Path
) -> None:
    prompt_set_id, ids = _setup(db_session, tmp_path, checkpoints=3)
    assert ensure_evaluations(db_session, prompt_set_id=prompt_set_id) == 3
    assert ensure_evaluations(db_session, prompt_set_id=prompt_set_id) == 0
    count = db_session.scalar(
        select(func.count())
        .select_from(Evaluation)
        .where(Evaluation.prompt_set_id == prompt_set_id)
    )
    assert count == 3
    first = claim_next(db_session, worker="w", prompt_set_id=prompt_set_id)
    assert (
        first is not None
        and first.checkpoint_id == ids[0]
        and first.checkpoint.status == "evaluating"
    )
    second = claim_next(db_session, worker="w", prompt_set_id=prompt_set_id)
    assert second is not None and second.checkpoint_id == ids[1]
    mark_failed(db_session, second, "RuntimeError: out of memory")
    assert (
        second.checkpoint.status == "failed"
        and second.checkpoint.error == "RuntimeError: out of memory"
    )
    third = claim_next(db_session, worker="w", prompt_set_id=prompt_set_id)
    assert third is not None and third.checkpoint_id == ids[2]
    assert (
        claim_next(db_session, worker="w", prompt_set_id=prompt_set_id) is None
    )  # failed is not retried
    requeue(db_session, checkpoint_id=ids[1], prompt_set_id=prompt_set_id)
    retry = claim_next(db_session, worker="w", prompt_set_id=prompt_set_id)
    assert retry is not None and retry.checkpoint_id == ids[1] and retry.error is None


def test_reward_model_and_external_runs_get_no_jobs(db_session: Session, tmp_path: Path) -> None:
    prompt_set_id, ids = _setup(db_session, tmp_path)
    for algorithm in ("rm", "external"):
        run = registry.start_run(
            db_session,
            name=f"{algorithm}-{tmp_path.name}",
            algorithm=algorithm,
            base_model="x",
            config={},
        )
        registry.register_checkpoint(db_session, run_id=run.id, step=1, path=tmp_path)
    assert ensure_evaluations(db_session, prompt_set_id=prompt_set_id) == len(ids)
    jobs = db_session.scalars(
        select(Evaluation.checkpoint_id).where(Evaluation.prompt_set_id == prompt_set_id)
    )
    assert sorted(jobs) == sorted(ids)


def _done_evaluation(session: Session, checkpoint_id: int, prompt_set_id: int) -> Evaluation:
    from judging.data.models import Generation, Prompt

    ensure_evaluations(session, prompt_set_id=prompt_set_id, checkpoint_ids=[checkpoint_id])
    evaluation = session.scalar(select(Evaluation).where(Evaluation.checkpoint_id == checkpoint_id))
    assert evaluation is not None
    prompt = session.scalar(select(Prompt).where(Prompt.prompt_set_id == prompt_set_id))
    assert prompt is not None
    session.add(
        Generation(
            checkpoint_id=checkpoint_id,
            prompt_id=prompt.id,
            text="old weights",
            token_count=2,
            finish_reason="stop",
            backend="transformers",
        )
    )
    evaluation.status, evaluation.summary, evaluation.flags = "done", {"reward_mean": 1.0}, []
    evaluation.checkpoint.status = "evaluated"
    session.flush()
    return evaluation


def _generations(session: Session, checkpoint_id: int) -> int:
    from judging.data.models import Generation

    query = select(func.count()).where(Generation.checkpoint_id == checkpoint_id)
    return int(session.scalar(query.select_from(Generation)) or 0)


def test_changed_checksum_requeues_evaluations(db_session: Session, tmp_path: Path) -> None:
    prompt_set_id, ids = _setup(db_session, tmp_path, checkpoints=2)
    checkpoint = registry.get_checkpoint(db_session, ids[1])
    evaluation = _done_evaluation(db_session, checkpoint.id, prompt_set_id)

    # Same files registered again (a resumed run re-registering): the evaluation stands.
    registry.register_checkpoint(
        db_session, run_id=checkpoint.run_id, step=10, path=checkpoint.path
    )
    assert evaluation.status == "done" and _generations(db_session, checkpoint.id) == 1

    # Overwritten weights (a resume that retrained the step): results of the old ones are void.
    (Path(checkpoint.path) / "adapter_model.safetensors").write_bytes(b"new weights")
    registry.register_checkpoint(
        db_session, run_id=checkpoint.run_id, step=10, path=checkpoint.path
    )
    db_session.refresh(evaluation)
    assert evaluation.status == "pending"
    assert evaluation.summary is None and evaluation.flags is None
    assert _generations(db_session, checkpoint.id) == 0
    assert checkpoint.status == "registered"
    assert claim_next(db_session, worker="w", prompt_set_id=prompt_set_id) is not None


class _Stop(Exception):
    pass


def test_worker_holds_no_write_lock_while_loading_models(tmp_path: Path) -> None:
    """On SQLite (the demo's database) a write transaction locks out every other writer: PPO's
    checkpoint registration failed with "database is locked" while a worker loaded its models
    and generated its first batch inside the transaction that had stored the job's config."""
    from sqlalchemy import text

    from judging.evaluation.config import EvalConfig
    from training.evaluation.worker import process_one

    url = f"sqlite:///{tmp_path / 'lock.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    with factory() as session:
        prompt_set_id, _ = _setup(session, tmp_path)
        ensure_evaluations(session, prompt_set_id=prompt_set_id)
        session.commit()
    other = make_engine(url)
    writes: list[str] = []

    def load(_checkpoint: Any, _config: Any) -> Any:
        import sqlite3

        raw = sqlite3.connect(str(tmp_path / "lock.db"), timeout=0.5)
        try:  # another process registering a checkpoint meanwhile
            raw.execute("UPDATE prompt_sets SET source = 'x'")
            raw.commit()
            writes.append("ok")
        except sqlite3.OperationalError as exc:
            writes.append(str(exc))
        finally:
            raw.close()
        raise _Stop("models not needed")

    config = EvalConfig(auto_eval_reward_model=False)
    outcome = process_one(
        factory, config=config, worker="w", prompt_set_id=prompt_set_id, load_models=load
    )
    assert outcome is not None and outcome.status == "failed"
    assert writes == ["ok"]
    with other.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM prompt_sets WHERE source = 'x'")).scalar()
    other.dispose()
    engine.dispose()


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid  # reaped: no process has this pid now (until the kernel reuses it)


def test_a_job_whose_worker_died_on_this_host_is_taken_at_once(
    db_session: Session, tmp_path: Path
) -> None:
    """A SIGKILLed worker cannot give its job back; waiting `stale_after_s` (10 minutes by
    default) for its heartbeat to age stalled the demo. A worker of this host whose process is
    gone is known dead now; one on another host, or still alive, keeps its job."""
    import os
    import socket

    from judging.evaluation.queue import local_worker_name

    prompt_set_id, ids = _setup(db_session, tmp_path, checkpoints=1)
    ensure_evaluations(db_session, prompt_set_id=prompt_set_id)
    host = socket.gethostname()
    assert local_worker_name() == f"{host}:{os.getpid()}"
    job = claim_next(db_session, worker=f"other-{host}:1", prompt_set_id=prompt_set_id)
    assert job is not None and job.checkpoint_id == ids[0]
    assert claim_next(db_session, worker="w", prompt_set_id=prompt_set_id) is None  # elsewhere
    job.worker = local_worker_name()  # alive: this test
    db_session.flush()
    assert claim_next(db_session, worker="w", prompt_set_id=prompt_set_id) is None
    job.worker = f"{host}:{_dead_pid()}"
    db_session.flush()
    taken = claim_next(db_session, worker="w", prompt_set_id=prompt_set_id)
    assert taken is not None and taken.id == job.id and taken.worker == "w"
