"""Shared plumbing for commands: settings, database sessions, console output."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from sqlalchemy.orm import Session

from judging.data.db import check_connection, make_engine, make_session_factory, session_scope
from judging.settings import Settings, get_settings

console = Console()
# soft_wrap: an error stays ONE line however narrow the terminal (scripts and tests parse it).
err_console = Console(stderr=True, soft_wrap=True)


def settings() -> Settings:
    return get_settings()


@contextmanager
def db_session() -> Iterator[Session]:
    """A committed-on-success session on the configured database; fails fast if unreachable."""
    engine = make_engine(settings().resolved_database_url)
    try:
        check_connection(engine)
        with session_scope(make_session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()
