"""The request's session (app.deps.get_db): committed when the handler returns, rolled back when
it raises, closed either way; only a session with work left goes to a worker thread."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from app.deps import get_db
from judging.data.db import make_session_factory
from judging.data.models import Rater


def _request(engine: Engine) -> Any:
    return SimpleNamespace(
        app=SimpleNamespace(state=SimpleNamespace(session_factory=make_session_factory(engine)))
    )


def _run(engine: Engine, work: Any, *, fail: bool) -> Session:
    async def go() -> Session:
        steps = get_db(_request(engine))
        session = await steps.__anext__()
        work(session)
        with pytest.raises((StopAsyncIteration, RuntimeError)):
            if fail:
                await steps.athrow(RuntimeError("handler failed"))
            else:
                await steps.__anext__()
        return session

    # A thread of its own: the browser tests' Playwright (sync API) keeps an event loop running
    # in the main thread for the rest of the session, where asyncio.run() refuses to start.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, go()).result()


def _add(name: str) -> Any:
    return lambda session: session.add(Rater(name=name, token_hash=name, session_version=0))


def _stored(engine: Engine, name: str) -> bool:
    with Session(engine) as check:
        return check.scalar(select(Rater.id).where(Rater.name == name)) is not None


def test_pending_work_is_committed_or_rolled_back(pg_engine: Engine) -> None:
    kept, dropped = f"kept-{uuid.uuid4().hex[:8]}", f"dropped-{uuid.uuid4().hex[:8]}"
    try:
        done = _run(pg_engine, _add(kept), fail=False)
        failed = _run(pg_engine, _add(dropped), fail=True)
        assert _stored(pg_engine, kept) and not _stored(pg_engine, dropped)
        assert not done.in_transaction() and not failed.in_transaction() and not failed.new
    finally:
        with Session(pg_engine) as cleanup:
            cleanup.execute(delete(Rater).where(Rater.name.in_((kept, dropped))))
            cleanup.commit()


def test_a_session_the_handler_committed_is_just_closed(pg_engine: Engine) -> None:
    def commit_itself(session: Session) -> None:
        session.scalar(select(Rater.id).limit(1))
        session.commit()

    session = _run(pg_engine, commit_itself, fail=False)
    assert not session.in_transaction() and not session.identity_map
