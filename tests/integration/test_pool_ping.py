"""The engine's disconnect handling: idle connections are pinged at checkout, busy ones are not.

Each test reads what PostgreSQL itself saw (pg_stat_activity, backend pids), not our code's
bookkeeping: the last statement a backend ran, and whether a killed backend was replaced.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from judging.data import db
from judging.data.db import make_engine
from judging.settings import Settings


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    made = make_engine(pg_url, pool_size=1, max_overflow=0)
    yield made
    made.dispose()


@pytest.fixture
def observer(pg_url: str) -> Iterator[Engine]:
    made = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    yield made
    made.dispose()


def _backend(engine: Engine, marker: str) -> int:
    """Run a statement PostgreSQL will remember as this backend's last query; its pid."""
    with engine.connect() as conn:
        pid = conn.execute(text(f"SELECT pg_backend_pid() AS {marker}")).scalar_one()
    return int(pid)


def _last_query(observer: Engine, pid: int) -> str:
    with observer.connect() as conn:
        query = conn.execute(
            text("SELECT query FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar_one()
    return str(query)


def _kill(observer: Engine, pid: int) -> None:
    with observer.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})


def test_a_connection_used_a_moment_ago_is_handed_out_without_a_ping(
    engine: Engine, observer: Engine
) -> None:
    pid = _backend(engine, "warm")
    with engine.connect() as conn:  # the same pooled connection, checked out again at once
        # Its last statement is the rollback of its return to the pool, not a ping (";").
        assert _last_query(observer, pid) == "ROLLBACK"
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() == pid


def test_an_idle_connection_is_pinged_and_a_dead_one_replaced(
    engine: Engine, observer: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)  # every checkin counts as long idle
    pid = _backend(engine, "idle")
    with engine.connect():
        assert _last_query(observer, pid) == ";"  # the ping (the psycopg dialect sends ";")
    _kill(observer, pid)
    # The ping finds the connection dead; the pool connects anew and the statement succeeds.
    assert _backend(engine, "after") != pid


def test_a_connection_killed_while_warm_fails_once_then_the_pool_recovers(
    engine: Engine, observer: Engine
) -> None:
    pid = _backend(engine, "warm")
    _kill(observer, pid)
    with pytest.raises(DBAPIError) as raised:
        _backend(engine, "stale")
    assert raised.value.connection_invalidated  # the app answers 503 for this one
    assert _backend(engine, "fresh") != pid


def test_the_health_check_on_a_connection_killed_while_warm_answers_503_then_200(
    pg_url: str, observer: Engine, tmp_path: Path
) -> None:
    """/healthz catches the driver's error to answer 503; the request's session must then be
    rolled back, not committed (a commit on the invalidated connection raised, and the client
    got a 500: seen in test_faults.py's outage test, one run in six)."""
    from app.main import create_app

    settings = Settings(DATABASE_URL=pg_url, RLHF_DATA_DIR=tmp_path, RLHF_ENV="test")  # type: ignore[call-arg]
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
            _kill(observer, _backend(app.state.engine, "warm"))  # the pool's one warm connection
            dead = client.get("/healthz")
            assert dead.status_code == 503, dead.text
            assert dead.json()["database"] == "unavailable"
            assert client.get("/healthz").status_code == 200  # a fresh connection, no restart
    finally:
        app.state.engine.dispose()
