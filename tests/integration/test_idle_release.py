"""A rater who leaves does not strand their work: the never-shown (and skipped) items of an idle,
revoked or excluded rater go to other eligible raters, under every blindness rule, audited, and
two raters asking at once never both get the same item."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from judging.data.models import Assignment, AuditEntry, Comparison, Rater, Study, StudyRater
from judging.settings import Settings
from judging.studies import assignment as plan
from judging.studies import departures, leases, qc, rating
from judging.studies import service as studies
from judging.studies.raters import revoke_rater
from tests.conftest import truncate_all
from tests.judging_helpers import Lab, build_lab, judge_queue, switch_to, tie

IDLE = timedelta(hours=6)
SAME = "Every checkpoint says this. It is one text. It repeats on purpose."


def _lab(
    session: Session,
    tmp_path: Path,
    raters: tuple[str, ...],
    prompts: int = 6,
    *,
    shared: bool = True,
) -> Lab:
    """With `shared`, both checkpoints answer every prompt with the same text: a rater who
    holds one of the two comparisons on a prompt has seen the text of the other, so may never
    take it."""
    texts = {(step, i): f"{SAME} Prompt {i}." for step in ("10", "20") for i in range(prompts)}
    return build_lab(
        session, tmp_path, prompts=prompts, raters=raters, texts=texts if shared else None
    )


def _study(session: Session, lab: Lab, raters: list[Rater], name: str = "idle") -> Study:
    return studies.create_study(
        session,
        name=name,
        checkpoint_ids=[c.id for c in lab.trained],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in raters],
        attention_check_rate=0,
        seed=11,
    )


def _open_items(session: Session, rater_id: int) -> list[Assignment]:
    return list(
        session.scalars(
            select(Assignment).where(
                Assignment.rater_id == rater_id, Assignment.status.in_(("pending", "skipped"))
            )
        )
    )


def _texts_twice(session: Session, study_id: int) -> dict[int, list[str]]:
    """rater -> every text shown more than once over all their assignments (must be empty)."""
    shown: dict[int, Counter[str]] = defaultdict(Counter)
    rows = session.execute(
        select(Assignment.rater_id, Comparison)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study_id)
    )
    for rater_id, comparison in rows:
        for text in rating.comparison_texts(session, comparison):
            shown[rater_id][plan.text_key(text)] += 1
    return {r: [t for t, n in c.items() if n > 1] for r, c in shown.items() if c.total() > len(c)}


def _holders(session: Session, study_id: int) -> dict[int, list[tuple[int, str]]]:
    out: dict[int, list[tuple[int, str]]] = defaultdict(list)
    rows = session.execute(
        select(Assignment.comparison_id, Assignment.rater_id, Assignment.status)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study_id)
    )
    for comparison_id, rater_id, status in rows:
        out[comparison_id].append((rater_id, status))
    return out


def test_idle_raters_unshown_items_flow_to_eligible_raters(
    db_session: Session, tmp_path: Path
) -> None:
    lab = _lab(db_session, tmp_path, ("alice", "bob", "carol", "dave", "eve"))
    alice, *others = lab.raters
    study = _study(db_session, lab, lab.raters)
    start = datetime.now(UTC)
    # Alice judged one item and skipped another, then left; the others keep working.
    first = rating.next_assignment(db_session, alice.id)
    assert first is not None
    rating.serve(db_session, first, now=start)
    rating.record_judgement(
        db_session,
        rater_id=alice.id,
        public_id=first.public_id,
        choice="left",
        rationale=None,
        idempotency_key="alice-1",
        now=start,
    )
    second = rating.next_assignment(db_session, alice.id)
    assert second is not None
    rating.serve(db_session, second, now=start)
    rating.skip(db_session, rater_id=alice.id, public_id=second.public_id, reason=None)
    stranded = {a.id: a.comparison_id for a in _open_items(db_session, alice.id)}
    assert len(stranded) >= 3
    references = dict(
        db_session.execute(
            select(Comparison.id, Comparison.reference_generation_id).where(
                Comparison.study_id == study.id
            )
        ).all()
    )

    # Within the window nothing moves, and a rater who is back is not idle.
    for rater in others:
        departures.touch(db_session, rater.id, now=start + IDLE / 2)
    assert departures.release_departed(db_session, idle=IDLE, now=start + IDLE / 2) == 0

    later = start + IDLE * 2
    for rater in others:
        departures.touch(db_session, rater.id, now=later)
    moved = departures.release_departed(db_session, idle=IDLE, now=later)
    db_session.expire_all()

    assert moved == len(stranded)
    assert _open_items(db_session, alice.id) == []
    holders = _holders(db_session, study.id)
    for assignment_id, comparison_id in stranded.items():
        mine = db_session.get(Assignment, assignment_id)
        assert mine is not None and mine.status == "released"
        live = [(r, s) for r, s in holders[comparison_id] if s != "released"]
        # Still one assignment per rater and comparison, N of them, none for alice.
        assert len(live) == study.raters_per_comparison
        assert len({r for r, _ in holders[comparison_id]}) == len(holders[comparison_id])
        assert alice.id not in {r for r, _ in live}
    # The judged item stays hers; no rater is ever shown a text twice.
    assert db_session.get(Assignment, first.id).status == "done"  # type: ignore[union-attr]
    assert _texts_twice(db_session, study.id) == {}
    # Each comparison keeps its own base sample.
    after = dict(
        db_session.execute(
            select(Comparison.id, Comparison.reference_generation_id).where(
                Comparison.study_id == study.id
            )
        ).all()
    )
    assert after == references
    entries = db_session.scalars(select(AuditEntry).where(AuditEntry.action == "rater_left")).all()
    assert {e.assignment_id for e in entries} == set(stranded)
    assert all(e.details["from"] == alice.id and e.details["to"] for e in entries)
    assert all("no activity" in e.details["reason"] for e in entries)
    # The receivers' queues still keep each prompt apart.
    for rater in others:
        queue = db_session.execute(
            select(Comparison.prompt_id)
            .join(Assignment, Assignment.comparison_id == Comparison.id)
            .where(Assignment.rater_id == rater.id, Assignment.status == "pending")
            .order_by(Assignment.position)
        ).scalars()
        assert plan.back_to_back(list(queue)) == 0


def test_idle_rater_without_an_eligible_taker_keeps_the_items(
    db_session: Session, tmp_path: Path
) -> None:
    lab = _lab(db_session, tmp_path, ("alice", "bob"), prompts=3, shared=False)
    alice, bob = lab.raters
    _study(db_session, lab, lab.raters)
    later = datetime.now(UTC) + IDLE * 2
    departures.touch(db_session, bob.id, now=later)
    before = {a.id for a in _open_items(db_session, alice.id)}
    assert departures.release_departed(db_session, idle=IDLE, now=later) == 0
    # She may come back: the items wait for her (bob already judges every comparison).
    assert {a.id for a in _open_items(db_session, alice.id)} == before


def test_newly_added_rater_is_not_idle_before_the_window(
    db_session: Session, tmp_path: Path
) -> None:
    lab = _lab(db_session, tmp_path, ("alice", "bob", "carol"))
    alice, bob, carol = lab.raters
    study = _study(db_session, lab, [alice, bob])
    # The study is old and nobody has seen carol yet; she joins now.
    db_session.execute(
        update(StudyRater)
        .where(StudyRater.study_id == study.id)
        .values(joined_at=datetime.now(UTC) - IDLE * 3)
    )
    for rater in (alice, bob):
        departures.touch(db_session, rater.id)
    studies.add_rater(db_session, study, carol.id)
    assert _open_items(db_session, carol.id)
    assert departures.release_departed(db_session, idle=IDLE) == 0


@pytest.mark.parametrize("how", ["revoked", "excluded"])
def test_revoked_or_excluded_raters_items_leave_at_once(
    db_session: Session, tmp_path: Path, how: str
) -> None:
    lab = _lab(db_session, tmp_path, ("alice", "bob", "carol", "dave", "eve"), shared=False)
    alice = lab.raters[0]
    study = _study(db_session, lab, lab.raters)
    for rater in lab.raters:
        departures.touch(db_session, rater.id)
    stranded = {a.id for a in _open_items(db_session, alice.id)}
    if how == "revoked":
        revoke_rater(db_session, "alice")
    else:
        qc.exclude_rater(db_session, study, alice.id, by=None, reason="careless")
    moved = departures.release_departed(db_session, idle=IDLE)
    db_session.expire_all()
    assert moved == len(stranded) and _open_items(db_session, alice.id) == []
    assert _texts_twice(db_session, study.id) == {}
    reasons = {
        e.details["reason"]
        for e in db_session.scalars(select(AuditEntry).where(AuditEntry.action == "rater_left"))
    }
    assert reasons and all(how in r for r in reasons)
    # A departed rater never receives work either: an expired lease skips alice, although
    # with nothing left in her queue she is the least loaded.
    bob = lab.raters[1]
    theirs = {c for c, people in _holders(db_session, study.id).items() if alice.id in dict(people)}
    item = next(a for a in _open_items(db_session, bob.id) if a.comparison_id not in theirs)
    rating.serve(db_session, item, now=datetime.now(UTC) - IDLE)
    assert leases.release_expired(db_session, lease=timedelta(minutes=30)) == 1
    db_session.expire_all()
    taker = {r for r, s in _holders(db_session, study.id)[item.comparison_id] if s == "pending"}
    assert taker and alice.id not in taker


def test_revoked_rater_without_a_taker_closes_with_the_reason(
    db_session: Session, tmp_path: Path
) -> None:
    lab = _lab(db_session, tmp_path, ("alice", "bob"), prompts=3, shared=False)
    _alice, bob = lab.raters
    study = _study(db_session, lab, lab.raters)
    revoke_rater(db_session, "alice")
    departures.release_departed(db_session, idle=IDLE)
    for rater in (bob,):
        judge_queue(db_session, rater.id, tie)
    report = leases.completion(db_session, study)
    assert report.open == 0 and report.complete == 0
    assert len(report.short) == 6 and all("revoked" in s.reason for s in report.short)


@pytest.fixture
def test_settings(pg_url: str, tmp_path: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        DATABASE_URL=pg_url,
        RLHF_DATA_DIR=tmp_path,
        RLHF_ENV="test",
        RLHF_IDLE_RELEASE_SECONDS=int(IDLE.total_seconds()),
    )


def test_next_item_request_releases_an_idle_raters_work(
    client: Any, db_session: Session, tmp_path: Path
) -> None:
    lab = _lab(db_session, tmp_path, ("alice", "bob", "carol", "dave", "eve"))
    alice, bob = lab.raters[:2]
    study = _study(db_session, lab, lab.raters)
    db_session.execute(
        update(StudyRater)
        .where(StudyRater.study_id == study.id)
        .values(joined_at=datetime.now(UTC) - IDLE * 2)
    )
    db_session.execute(
        update(Rater)
        .where(Rater.id != alice.id)
        .values(last_seen_at=datetime.now(UTC) - timedelta(minutes=5))
    )
    stranded = len(_open_items(db_session, alice.id))
    switch_to(client, lab.tokens["bob"])
    page = client.get("/rate")
    assert page.status_code == 200
    db_session.expire_all()
    assert _open_items(db_session, alice.id) == []
    moved = db_session.scalars(select(AuditEntry).where(AuditEntry.action == "rater_left")).all()
    assert len(moved) == stranded
    seen = db_session.get(Rater, bob.id)
    assert seen is not None and seen.last_seen_at is not None
    assert seen.last_seen_at > datetime.now(UTC) - timedelta(minutes=1)


# --- two raters asking at once, on committed PostgreSQL ------------------------------------------


@pytest.fixture
def factory(pg_engine: Engine) -> Iterator[sessionmaker[Session]]:
    yield sessionmaker(bind=pg_engine, expire_on_commit=False)
    truncate_all(pg_engine)


def _slow(picker: Any) -> Any:
    """The replacement picker with a pause: widens the gap between reading who may take an
    item and handing it over, where two requests could both hand out the same item."""

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.05)
        return picker(*args, **kwargs)

    return slow


def test_two_raters_asking_at_once_never_share_a_released_item(
    factory: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with factory() as session:
        lab = _lab(session, tmp_path, ("alice", "bob", "carol", "dave", "eve"), prompts=8)
        alice, bob, carol = lab.raters[:3]
        study = _study(session, lab, lab.raters, name="idle-race")
        session.execute(
            update(StudyRater)
            .where(StudyRater.study_id == study.id)
            .values(joined_at=datetime.now(UTC) - IDLE * 2)
        )
        for rater in lab.raters[1:]:
            departures.touch(session, rater.id)
        session.commit()
        study_id = study.id
        stranded = len(_open_items(session, alice.id))
    monkeypatch.setattr(plan, "pick_replacement", _slow(plan.pick_replacement))
    start = threading.Barrier(2)
    results: dict[int, int] = {}
    errors: list[BaseException] = []

    def ask(rater_id: int) -> None:
        start.wait()
        try:
            with factory() as session:
                departures.touch(session, rater_id)
                results[rater_id] = departures.release_departed(session, idle=IDLE)
                rating.queue_state(session, rater_id)
                session.commit()
        except BaseException as exc:  # a deadlock or unique violation would land here
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(r.id,)) for r in (bob, carol)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sum(results.values()) == stranded  # each item handed on once, by one of the two
    with factory() as session:
        assert _open_items(session, alice.id) == []
        holders = _holders(session, study_id)
        for people in holders.values():
            live = [r for r, s in people if s != "released"]
            assert len(live) == 2 and len({r for r, _ in people}) == len(people)
        assert _texts_twice(session, study_id) == {}
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "rater_left"))
        assert len(list(entries)) == stranded


def test_requests_seeing_different_leavers_keep_every_rater_blind(
    factory: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first request sees alice gone; the second, a little later, alice and dave. Both plan
    at once: without the study lock each hands one of a prompt's two same-text comparisons to
    the one rater free on that prompt, who is then shown the text twice."""
    with factory() as session:
        lab = _lab(session, tmp_path, ("alice", "bob", "carol", "dave", "eve"), prompts=8)
        alice, dave = lab.raters[0], lab.raters[3]
        study = _study(session, lab, lab.raters, name="idle-race-2")
        now = datetime.now(UTC)
        session.execute(
            update(StudyRater)
            .where(StudyRater.study_id == study.id)
            .values(joined_at=now - IDLE * 2)
        )
        for rater in lab.raters:
            departures.touch(session, rater.id, now=now)
        session.execute(
            update(Rater).where(Rater.id == alice.id).values(last_seen_at=now - IDLE * 2)
        )
        session.execute(
            update(Rater)
            .where(Rater.id == dave.id)
            .values(last_seen_at=now - IDLE + timedelta(minutes=5))
        )
        session.commit()
        study_id = study.id
    monkeypatch.setattr(plan, "pick_replacement", _slow(plan.pick_replacement))
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def ask(at: datetime) -> None:
        start.wait()
        try:
            with factory() as session:
                departures.release_departed(session, idle=IDLE, now=at)
                session.commit()
        except BaseException as exc:
            errors.append(exc)

    moments = (now, now + timedelta(minutes=10))
    threads = [threading.Thread(target=ask, args=(at,)) for at in moments]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with factory() as session:
        # Whichever request ran first, some work moved and some may wait (nobody eligible).
        assert session.scalars(select(AuditEntry).where(AuditEntry.action == "rater_left")).all()
        assert _texts_twice(session, study_id) == {}
        for people in _holders(session, study_id).values():
            assert len({r for r, _ in people}) == len(people)
