"""FastAPI dependencies as Annotated aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from judging.settings import Settings


async def get_db(request: Request) -> AsyncIterator[Session]:
    """One session per request: committed when the handler returns, rolled back on error.

    Async so that the two steps without I/O stay on the event loop: opening the session, and
    closing one with nothing left to commit (the rater's routes commit themselves). As a sync
    generator each was a trip to a worker thread and back on every request. A session still
    holding work commits or rolls back in a worker thread, as before.
    """
    session: Session = request.app.state.session_factory()
    try:
        yield session
    except BaseException:
        await _finish(session, commit=False)
        raise
    await _finish(session, commit=True)


async def _finish(session: Session, *, commit: bool) -> None:
    if session.in_transaction() or session.new or session.dirty or session.deleted:
        await run_in_threadpool(_end, session, commit)
    else:
        session.close()


def _end(session: Session, commit: bool) -> None:
    """Commit (or roll back) and close, as judging.data.db.session_scope does."""
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# scope="function": commit before the response is sent, so a POST -> 303 -> GET sees its write.
SessionDep = Annotated[Session, Depends(get_db, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
