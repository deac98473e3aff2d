"""Admin moves against a live rater on committed PostgreSQL: a verdict submitted while the
admin reassigns stays with its rater and its item; moves are audited."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from judging.data.models import Assignment, AuditEntry, Judgement, Study
from judging.errors import LabError
from judging.studies import assignment as plan
from judging.studies import rating, transfers
from judging.studies import service as studies
from tests.conftest import truncate_all
from tests.judging_helpers import build_lab


@pytest.fixture
def factory(pg_engine: Engine) -> Iterator[sessionmaker[Session]]:
    yield sessionmaker(bind=pg_engine, expire_on_commit=False)
    truncate_all(pg_engine)


def _slow(planner: Any) -> Any:
    """The planner with a pause: widens the gap between the admin's read and write, the
    window in which a rater's verdict used to be overwritten."""

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.4)
        return planner(*args, **kwargs)

    return slow


def test_submit_while_reassigning(
    factory: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with factory() as session:
        lab = build_lab(
            session, tmp_path, prompts=30, steps=(10,), raters=("alice", "bob", "carol", "admin")
        )
        alice, bob, carol, admin = lab.raters
        study = studies.create_study(
            session,
            name="race",
            checkpoint_ids=[lab.trained[0].id],
            prompt_set_id=lab.prompt_set_id,
            rater_ids=[alice.id, bob.id, carol.id],
            attention_check_rate=0,
            seed=3,
        )
        session.commit()
        study_id = study.id
        mine = list(
            session.scalars(
                select(Assignment.public_id)
                .where(Assignment.rater_id == alice.id)
                .order_by(Assignment.position)
            )
        )
    monkeypatch.setattr(plan, "plan_handover", _slow(plan.plan_handover))
    submitted: list[str] = []
    refused: list[str] = []
    start = threading.Barrier(2)

    def rater() -> None:
        start.wait()
        for public_id in mine:
            with factory() as session:
                try:
                    assignment = session.scalar(
                        select(Assignment).where(Assignment.public_id == public_id)
                    )
                    if assignment is not None:
                        rating.serve(session, assignment)
                    rating.record_judgement(
                        session,
                        rater_id=alice.id,
                        public_id=public_id,
                        choice="left",
                        rationale=None,
                        idempotency_key=f"k-{public_id}",
                    )
                    session.commit()
                    submitted.append(public_id)
                except LabError:
                    session.rollback()
                    refused.append(public_id)
            time.sleep(0.03)

    def admin_move() -> None:
        start.wait()
        time.sleep(0.05)
        with factory() as session:
            target = session.get(Study, study_id)
            assert target is not None
            transfers.reassign_rater_work(session, target, alice.id, actor_id=admin.id)
            session.commit()

    threads = [threading.Thread(target=rater), threading.Thread(target=admin_move)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert submitted and refused, (len(submitted), len(refused))  # the race really happened
    with factory() as session:
        rows = session.execute(
            select(Assignment, Judgement).join(Judgement, Judgement.assignment_id == Assignment.id)
        ).all()
        # Every verdict stays with the rater who gave it, on an item marked done.
        assert len(rows) == len(submitted)
        assert all(a.rater_id == alice.id and a.status == "done" for a, _ in rows)
        # Nothing unfinished is left with alice; what moved is in the audit log.
        left = session.scalars(
            select(Assignment).where(Assignment.rater_id == alice.id, Assignment.status != "done")
        ).all()
        assert left == []
        moves = session.scalars(select(AuditEntry).where(AuditEntry.action == "reassign")).all()
        assert len(moves) == len(refused)
        assert all(m.actor_id == admin.id and m.details["from"] == alice.id for m in moves)
        assert {m.details["to"] for m in moves} <= {bob.id, carol.id}
