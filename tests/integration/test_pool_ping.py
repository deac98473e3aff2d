"""The engine's disconnect handling: idle connections are pinged at checkout, busy ones are not.

Each test reads what PostgreSQL itself saw (pg_stat_activity, backend pids), not our code's
bookkeeping: the last statement a backend ran, and whether a killed backend was replaced.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from judging.data import db
from judging.data.db import make_engine

pytestmark = pytest.mark.integration


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
