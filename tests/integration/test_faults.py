"""Faults as tests: the app SIGKILLed mid-submission, and the database dropping every connection.

Simulated raters judge through a real uvicorn subprocess on a committed database; every verdict
the server acknowledged (a 303 or a 200 fragment) must be stored exactly once afterwards.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from judging.data.models import Assignment, Judgement
from judging.studies import service as studies
from tests.conftest import ADMIN_URL, truncate_all
from tests.judging_helpers import Lab, build_lab
from tests.live_app import LiveApp

pytestmark = pytest.mark.slow

ITEM = re.compile(r'class="judge-form" method="post" action="/rate/([A-Za-z0-9_-]+)"')
KEY = re.compile(r'name="key" value="([^"]+)"')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Tally:
    acked: list[tuple[str, str, str]] = field(default_factory=list)  # (public id, key, choice)
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, code: int) -> None:
        with self.lock:
            self.statuses[code] += 1


def _sign_in(url: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=10)
    response = client.post("/invite", data={"token": token})
    assert response.status_code == 303, response.text[:200]
    return client


def _retrying(tally: Tally, stop: threading.Event, send: object) -> httpx.Response | None:
    """Send until the server answers with anything but a 503 (it may be dead or DB-less)."""
    while not stop.is_set():
        try:
            response: httpx.Response = send()  # type: ignore[operator]
        except httpx.TransportError:
            with tally.lock:
                tally.transport_errors += 1
            time.sleep(0.05)
            continue
        tally.saw(response.status_code)
        if response.status_code != 503:
            return response
        time.sleep(0.05)
    return None


def _judge_all(client: httpx.Client, tally: Tally, stop: threading.Event) -> None:
    rng = random.Random()
    while not stop.is_set():
        page = _retrying(tally, stop, lambda: client.get("/rate"))
        if page is None or "All done" in page.text:
            return
        item, key, csrf = ITEM.search(page.text), KEY.search(page.text), CSRF.search(page.text)
        assert item and key and csrf, page.text[:300]
        choice = rng.choice(["left", "right", "tie", "both_bad"])
        data = {"choice": choice, "key": key.group(1), "csrf_token": csrf.group(1)}
        # A retry after a dead connection resends the very same form: same key, same choice.
        url = f"/rate/{item.group(1)}"
        done = _retrying(tally, stop, lambda u=url, d=data: client.post(u, data=d))
        if done is None:
            return
        assert done.status_code == 303, (done.status_code, done.text[:300])
        with tally.lock:
            tally.acked.append((item.group(1), key.group(1), choice))


def _verify(session: Session, tally: Tally) -> None:
    session.expire_all()
    stored = {
        public_id: (key, choice)
        for public_id, key, choice in session.execute(
            select(Assignment.public_id, Judgement.idempotency_key, Judgement.choice).join(
                Judgement, Judgement.assignment_id == Assignment.id
            )
        )
    }
    lost = [a for a in tally.acked if stored.get(a[0]) != (a[1], a[2])]
    assert lost == [], f"acknowledged but not stored as acknowledged: {lost}"
    per_assignment = session.execute(
        select(Judgement.assignment_id, func.count()).group_by(Judgement.assignment_id)
    ).all()
    assert all(n == 1 for _, n in per_assignment)
    done = session.scalar(select(func.count()).where(Assignment.status == "done"))
    assert done == len(per_assignment)
    assert 500 not in tally.statuses and not any(
        code >= 500 and code != 503 for code in tally.statuses
    )


@pytest.fixture
def committed(pg_engine: Engine) -> Iterator[Session]:
    session = sessionmaker(bind=pg_engine, expire_on_commit=False)()
    try:
        yield session
    finally:
        session.close()
        truncate_all(pg_engine)


def _lab(session: Session, tmp_path: Path, raters: int, prompts: int) -> Lab:
    names = tuple(f"r{i}" for i in range(raters))
    lab = build_lab(session, tmp_path, prompts=prompts, steps=(10,), raters=names)
    studies.create_study(
        session,
        name="faults",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters],
        attention_check_rate=0,
    )
    session.commit()
    return lab


def _run_raters(
    app: LiveApp, lab: Lab, tally: Tally, stop: threading.Event
) -> list[threading.Thread]:
    clients = [_sign_in(app.url, token) for token in lab.tokens.values()]
    threads = [threading.Thread(target=_judge_all, args=(c, tally, stop)) for c in clients]
    for thread in threads:
        thread.start()
    return threads


def _wait_for(condition: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_sigkill_mid_submission_loses_no_acknowledged_verdict(
    pg_url: str, committed: Session, tmp_path: Path
) -> None:
    lab = _lab(committed, tmp_path, raters=4, prompts=20)
    total = committed.scalar(select(func.count()).select_from(Assignment))
    app = LiveApp(pg_url, tmp_path)
    app.start()
    stop = threading.Event()
    tally = Tally()
    try:
        threads = _run_raters(app, lab, tally, stop)
        for kill_after in (6, 18):
            _wait_for(lambda n=kill_after: len(tally.acked) >= n, 60)
            app.kill()  # mid-flight: the raters keep posting into a dead socket
            time.sleep(0.3)
            app.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
    finally:
        stop.set()
        app.stop()
    assert tally.transport_errors > 0, "the kill never hit a request in flight"
    assert len(tally.acked) == total
    _verify(committed, tally)


def test_database_dropping_connections_gives_503s_then_recovers(
    pg_url: str, committed: Session, tmp_path: Path
) -> None:
    lab = _lab(committed, tmp_path, raters=3, prompts=24)
    name = make_url(pg_url).database
    app = LiveApp(pg_url, tmp_path)
    app.start()
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    stop = threading.Event()
    tally = Tally()
    probe = httpx.Client(base_url=app.url, timeout=10)
    try:
        threads = _run_raters(app, lab, tally, stop)
        _wait_for(lambda: len(tally.acked) >= 5, 60)
        with admin.connect() as conn:  # an outage of this database only: the server is shared
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
        health = probe.get("/healthz")
        assert health.status_code == 503 and health.json()["database"] == "unavailable"
        _wait_for(lambda: tally.statuses[503] >= 10, 30)
        # Counted only now: a verdict committed just before the outage may still have been on
        # its way back (seen once on a loaded machine); the rater threads are sequential, so
        # after ten 503s nothing from before the outage is in flight any more.
        acked_before = len(tally.acked)
        page = probe.get("/rate", headers={"accept": "text/html"})
        assert page.status_code in (303, 503)
        time.sleep(1.0)
        assert len(tally.acked) == acked_before, "verdicts acknowledged with no database"
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        # No restart: a dead connection fails one request (503) and invalidates the pool, or
        # the idle ping finds it first; either way the next checkouts connect afresh.
        _wait_for(lambda: probe.get("/healthz").status_code == 200, 10)
        for thread in threads:
            thread.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
    finally:
        stop.set()
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
        app.stop()
    assert tally.statuses[503] >= 10
    assert len(tally.acked) == committed.scalar(select(func.count()).select_from(Assignment))
    _verify(committed, tally)
