"""Migrations upgrade and downgrade cleanly, on PostgreSQL and on SQLite, and match the models."""

from __future__ import annotations

import uuid
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from judging.data import migrate
from judging.data.db import Base, make_engine
from tests.conftest import ADMIN_URL


def _roundtrip(url: str) -> None:
    migrate.upgrade(url)
    engine = make_engine(url)
    tables = set(inspect(engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    assert diff == [], f"models and migrations disagree: {diff}"
    engine.dispose()
    migrate.downgrade(url, "base")
    engine = make_engine(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    migrate.upgrade(url)  # and back up again
    assert migrate.current_revision(url) is not None


def test_postgres_upgrade_downgrade_upgrade() -> None:
    name = f"rlhf_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        _roundtrip(make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_sqlite_upgrade_downgrade_upgrade(tmp_path: Path) -> None:
    _roundtrip(f"sqlite:///{tmp_path / 'lab.db'}")


def _row_counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        counts = {
            t.name: int(conn.execute(text(f'SELECT count(*) FROM "{t.name}"')).scalar_one())
            for t in Base.metadata.sorted_tables
        }
    engine.dispose()
    return counts


def test_sqlite_migrations_keep_a_demo_databases_rows(tmp_path: Path) -> None:
    """A laptop demo's database with a study under way, taken down to 0110 and up to head.

    On SQLite a batch migration copies a table, drops the original and renames the copy; with
    foreign keys enforced, dropping a parent deleted its children by ON DELETE CASCADE (0111 on
    `studies` emptied `comparisons`, `assignments` and `judgements`). Migrations now run with
    enforcement off and check the keys before committing. 0112 also gives every assignment its
    comparison's study."""
    from sqlalchemy.orm import Session

    from judging.studies import rating
    from judging.studies import service as studies
    from tests.judging_helpers import build_lab

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        lab = build_lab(session, tmp_path, prompts=4, steps=(10, 20), raters=("a", "b"))
        for name in ("first", "second"):
            studies.create_study(
                session,
                name=name,
                checkpoint_ids=[c.id for c in lab.trained],
                prompt_set_id=lab.prompt_set_id,
                rater_ids=[r.id for r in lab.raters],
            )
        item = rating.queue_state(session, lab.raters[0].id).item
        assert item is not None
        rating.record_judgement(
            session,
            rater_id=lab.raters[0].id,
            public_id=item.public_id,
            choice="left",
            rationale=None,
            idempotency_key="kept",
        )
        session.commit()
    engine.dispose()
    before = _row_counts(url)
    assert before["assignments"] >= 2 * 2 * 4 and before["judgements"] == 1
    migrate.downgrade(url, "0110")
    migrate.upgrade(url)
    assert _row_counts(url) == before
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.study_id, c.study_id FROM assignments a "
                "JOIN comparisons c ON c.id = a.comparison_id"
            )
        ).all()
    engine.dispose()
    assert len({ours for ours, _ in rows}) == 2
    assert all(ours == theirs for ours, theirs in rows)
