"""`rlhf db backup` / `rlhf db restore` round trips that lose nothing (PostgreSQL and SQLite)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cli.main import app
from judging.data.db import Base, make_engine
from judging.data.migrate import upgrade
from judging.data.models import Judgement, Rater
from judging.settings import get_settings
from judging.studies import rating
from judging.studies import service as studies
from tests.conftest import ADMIN_URL
from tests.judging_helpers import build_lab


@pytest.fixture
def scratch_pg() -> Iterator[str]:
    """A database of its own: restore drops and recreates every object in it."""
    name = f"rlhf_backup_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _fill(url: str, tmp_path: Path) -> None:
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        lab = build_lab(session, tmp_path, prompts=3, steps=(10, 20), raters=("ann", "ben"))
        study = studies.create_study(
            session,
            name="kept",
            checkpoint_ids=[t.id for t in lab.trained],
            prompt_set_id=lab.prompt_set_id,
            rater_ids=[r.id for r in lab.raters],
            attention_check_rate=0,
        )
        queue = rating.queue_state(session, lab.raters[0].id)
        assert queue.item is not None
        rating.record_judgement(
            session,
            rater_id=lab.raters[0].id,
            public_id=queue.item.public_id,
            choice="left",
            rationale="naïve — “quoted” 🙂 line\nbreak",
            idempotency_key="k1",
        )
        assert study.id
        session.commit()
    engine.dispose()


def _snapshot(url: str) -> dict[str, list[Any]]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = {
            table.name: [
                tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in Base.metadata.sorted_tables
        }
        rows["alembic_version"] = list(
            conn.execute(text("SELECT version_num FROM alembic_version"))
        )
    engine.dispose()
    return rows


def _vandalise(url: str) -> None:
    engine = make_engine(url)
    with Session(engine) as session:
        session.execute(delete(Judgement))
        session.add(Rater(name="added-after-backup", token_hash="0" * 64))
        ben = session.scalar(select(Rater).where(Rater.name == "ben"))
        assert ben is not None
        ben.role = "admin"
        session.commit()
    engine.dispose()


def _cli(monkeypatch: pytest.MonkeyPatch, url: str, tmp_path: Path, *args: str) -> Any:
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("RLHF_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        get_settings.cache_clear()


def _round_trip(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(url, tmp_path)
    before = _snapshot(url)
    assert before["judgements"] and before["raters"] and before["assignments"]
    dump = tmp_path / "lab.backup"
    made = _cli(monkeypatch, url, tmp_path, "db", "backup", str(dump))
    assert made.exit_code == 0, made.output or made.exception
    again = _cli(monkeypatch, url, tmp_path, "db", "backup", str(dump))
    assert again.exit_code == 1 and "--overwrite" in str(again.exception)
    _vandalise(url)
    assert _snapshot(url) != before
    unconfirmed = _cli(monkeypatch, url, tmp_path, "db", "restore", str(dump))
    assert unconfirmed.exit_code == 1 and "--yes" in str(unconfirmed.exception)
    done = _cli(monkeypatch, url, tmp_path, "db", "restore", str(dump), "--yes")
    assert done.exit_code == 0, done.output or done.exception
    assert _snapshot(url) == before
    junk = tmp_path / "junk.backup"
    junk.write_text("not a backup")
    refused = _cli(monkeypatch, url, tmp_path, "db", "restore", str(junk), "--yes")
    assert refused.exit_code == 1 and "not a" in str(refused.exception)
    assert _snapshot(url) == before


def test_postgresql_round_trip_loses_nothing(
    scratch_pg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _round_trip(scratch_pg, tmp_path, monkeypatch)


def test_sqlite_round_trip_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _round_trip(f"sqlite:///{tmp_path / 'lab.db'}", tmp_path, monkeypatch)
