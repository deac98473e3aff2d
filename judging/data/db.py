"""Engine, sessions and the declarative base shared by every model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import JSON, Connection, Engine, MetaData, create_engine, event, exc
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from judging.errors import ConfigError

# Stable constraint names keep Alembic diffs and downgrades deterministic on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # WAL: the demo's web app, trainer and evaluation worker read while another process writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets foreign keys on and its parent folder created."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
        return engine
    engine = create_engine(url, pool_use_lifo=True, **kwargs)
    _ping_idle_connections(engine)
    return engine


PING_AFTER_IDLE_S = 1.0
"""A pooled connection unused this long is pinged before it is handed out."""


def _ping_idle_connections(engine: Engine) -> None:
    """Pessimistic disconnect handling for connections that sat idle, not for busy ones.

    `pool_pre_ping` sends a round trip before every checkout, two per rater request (profiled
    at 4% of the app's CPU, and PostgreSQL's share on top). A connection used within the
    last second is almost surely alive; if PostgreSQL did restart in that second, the statement
    fails, the error handler answers 503 and SQLAlchemy invalidates the whole pool, so the next
    checkouts connect afresh. The pool is LIFO, so under light load the same few connections
    stay warm (and unpinged) instead of every connection in turn going idle.
    """

    @event.listens_for(engine.pool, "checkin")
    def _idle_from(_dbapi: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _ping_if_idle(dbapi: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return  # just connected, or busy a moment ago
        try:
            engine.dialect.do_ping(dbapi)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool invalidates this connection and checks out another (or connects anew).
            raise exc.DisconnectionError(str(error)) from error


def core_connection(session: Session) -> Connection:
    """The session's connection (in its transaction), for statements that load no entities: they
    skip the ORM's execution layer. Pending ORM changes are flushed first, as the session's
    autoflush would."""
    if session.new or session.dirty or session.deleted:
        session.flush()
    return session.connection()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def check_connection(engine: Engine) -> None:
    """Fail with a one-line ConfigError when the database cannot be reached."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        url = engine.url.render_as_string(hide_password=True)
        raise ConfigError(f"cannot connect to database {url}: {reason}") from None
