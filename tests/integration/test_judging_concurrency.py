"""Racing submits against a committed database: exactly one judgement per item, never a 500."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from judging.data.models import Assignment, Judgement
from judging.settings import Settings
from judging.studies import service as studies
from tests.conftest import truncate_all
from tests.judging_helpers import build_lab, login


@pytest.fixture
def committed(pg_engine: Engine) -> Iterator[Session]:
    session = sessionmaker(bind=pg_engine, expire_on_commit=False)()
    try:
        yield session
    finally:
        session.close()
        truncate_all(pg_engine)


def test_two_raters_and_double_submits_race(
    committed: Session, test_settings: Settings, tmp_path: Path
) -> None:
    from app.main import create_app

    lab = build_lab(committed, tmp_path, prompts=6, steps=(10,))
    studies.create_study(
        committed,
        name="race",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters],
        attention_check_rate=0,
    )
    committed.commit()
    app = create_app(test_settings)
    items = {
        r.name: list(
            committed.scalars(select(Assignment.public_id).where(Assignment.rater_id == r.id))
        )
        for r in lab.raters
    }
    statuses: list[int] = []
    lock = threading.Lock()
    # Invite links are one-time: sign each rater in once; both of their workers share the cookie.
    cookies = {}
    for name in items:
        with TestClient(app) as first:
            login(first, lab.tokens[name])
            cookies[name] = first.cookies["rlhf_session"]

    def hammer(name: str, worker: int, barrier: threading.Barrier) -> None:
        with TestClient(app) as client:
            client.cookies.set("rlhf_session", cookies[name])
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/rate").text).group(
                1
            )  # type: ignore[union-attr]
            barrier.wait()
            for i, public_id in enumerate(items[name]):
                # Half the items: the very same key from both workers (a double click); the other
                # half: different keys (a resubmit from a stale tab). htmx and plain alternate.
                key = f"{name}-{i}" if i % 2 == 0 else f"{name}-{i}-{worker}"
                headers = {"HX-Request": "true"} if worker else {}
                response = client.post(
                    f"/rate/{public_id}",
                    data={"choice": "left" if worker else "right", "csrf_token": csrf, "key": key},
                    headers=headers,
                    follow_redirects=False,
                )
                with lock:
                    statuses.append(response.status_code)

    barrier = threading.Barrier(4)
    threads = [
        threading.Thread(target=hammer, args=(name, worker, barrier))
        for name in items
        for worker in (0, 1)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    app.state.engine.dispose()
    assert all(code in (200, 303) for code in statuses), statuses
    assert len(statuses) == 2 * sum(len(v) for v in items.values())
    committed.expire_all()
    per_assignment = committed.execute(
        select(Judgement.assignment_id, func.count()).group_by(Judgement.assignment_id)
    ).all()
    total = sum(len(v) for v in items.values())
    assert len(per_assignment) == total and all(n == 1 for _, n in per_assignment)
    assert committed.scalar(select(func.count()).where(Assignment.status == "done")) == total
