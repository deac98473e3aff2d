"""Adaptive allocation (issue 25) on PostgreSQL: what a study serves, when it stops, and that
nothing a rater relies on changes (blindness, one item per rater, verdicts never lost)."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from judging.data.models import Assignment, Comparison, Judgement, Study
from judging.errors import ConflictError
from judging.studies import allocation, leases, rating
from judging.studies import service as studies
from judging.studies.evidence import load_study_evidence
from tests.conftest import truncate_all
from tests.judging_helpers import Lab, build_lab, form_value, login

PROMPTS = 80


@dataclass
class Drive:
    """What simulated raters did to a study."""

    verdicts: int = 0
    served: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    """rater -> public ids served, in order."""
    states: list[tuple[int, tuple[int, ...], bool]] = field(default_factory=list)
    """(verdicts so far, contenders, decided) after every verdict."""


def _lab(session: Session, tmp_path: Path, raters: tuple[str, ...] = ("a", "b", "c")) -> Lab:
    lab = build_lab(session, tmp_path, prompts=PROMPTS, steps=(10, 20, 30), raters=raters)
    session.commit()  # a refused study rolls back to here
    return lab


def _adaptive(session: Session, lab: Lab, **kwargs: object) -> Study:
    options: dict[str, object] = {
        "name": "adaptive",
        "checkpoint_ids": [c.id for c in lab.trained],
        "prompt_set_id": lab.prompt_set_id,
        "rater_ids": [r.id for r in lab.raters],
        "attention_check_rate": 0.0,
        "seed": 7,
        "allocation": "adaptive",
    }
    options.update(kwargs)
    study = studies.create_study(session, **options)  # type: ignore[arg-type]
    session.commit()
    return study


def _verdict(
    session: Session, public_id: str, wins: Mapping[int, float], rng: random.Random
) -> str:
    """The checkpoint's side with its win probability, else the reference's."""
    assignment = session.scalar(select(Assignment).where(Assignment.public_id == public_id))
    assert assignment is not None
    comparison = session.get(Comparison, assignment.comparison_id)
    assert comparison is not None
    other = "right" if assignment.checkpoint_side == "left" else "left"
    if comparison.kind == "attention":
        return assignment.checkpoint_side
    return assignment.checkpoint_side if rng.random() < wins[comparison.checkpoint_id] else other


def _contenders(session: Session, study: Study) -> tuple[int, ...]:
    session.refresh(study)
    return tuple(study.allocation_contenders or [])


def _drive(
    session: Session,
    study: Study,
    raters: list[int],
    wins: Mapping[int, float],
    *,
    seed: int = 1,
    hold: set[int] = frozenset(),  # type: ignore[assignment]
    limit: int = 10_000,
) -> Drive:
    """Raters judge round-robin, as the web pages do (verdict committed, then the due
    recomputation, an empty queue topped up), until nobody is served anything."""
    rng, drive = random.Random(seed), Drive()
    while drive.verdicts < limit:
        progressed = False
        for rater in raters:
            if rater in hold:
                continue
            state = rating.queue_state(session, rater)
            if state.item is None and allocation.top_up(session, rater):
                state = rating.queue_state(session, rater)
            if state.item is None:
                continue
            drive.served[rater].append(state.item.public_id)
            rating.record_judgement(
                session,
                rater_id=rater,
                public_id=state.item.public_id,
                choice=_verdict(session, state.item.public_id, wins, rng),
                rationale=None,
                idempotency_key=state.item.idempotency_key,
            )
            session.commit()
            allocation.recompute_due(session)
            drive.verdicts += 1
            session.refresh(study)
            drive.states.append(
                (drive.verdicts, _contenders(session, study), study.decided_at is not None)
            )
            progressed = True
        if not progressed:
            break
    return drive


def _statuses(session: Session, study: Study, checkpoint_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Assignment.status, func.count())
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study.id, Comparison.checkpoint_id == checkpoint_id)
        .group_by(Assignment.status)
    )
    return dict(rows.all())


def _judged_ranks(session: Session, study: Study) -> dict[int, set[int]]:
    """checkpoint -> prompt ranks with a live verdict."""
    rows = session.execute(
        select(Comparison.checkpoint_id, Comparison.prompt_rank)
        .join(Assignment, Assignment.comparison_id == Comparison.id)
        .join(Judgement, Judgement.assignment_id == Assignment.id)
        .where(Comparison.study_id == study.id, Judgement.withdrawn_at.is_(None))
    )
    out: dict[int, set[int]] = defaultdict(set)
    for checkpoint, rank in rows:
        out[checkpoint].add(rank)
    return out


def test_adaptive_study_eliminates_decides_and_stops_before_the_budget(
    db_session: Session, tmp_path: Path
) -> None:
    lab = _lab(db_session, tmp_path)
    good, close, bad = (c.id for c in lab.trained)
    study = _adaptive(db_session, lab)
    raters = [r.id for r in lab.raters]
    budget = allocation.budget(db_session, study)
    assert budget == 3 * PROMPTS * 2
    # Before any verdict only the burn-in is open, for every checkpoint alike.
    assert study.allocation_frontier == allocation.BURN_IN
    assert set(_statuses(db_session, study, bad)) == {"pending", "parked"}

    drive = _drive(db_session, study, raters, {good: 0.9, close: 0.85, bad: 0.1})

    db_session.refresh(study)
    assert study.decided_at is not None and study.decided_after is not None
    assert study.decided_after == drive.verdicts < budget
    # The bad checkpoint left contention before the decision; the other two kept going.
    eliminated = [
        n for n, contenders, decided in drive.states if not decided and bad not in contenders
    ]
    assert eliminated, "the clearly worse checkpoint was never eliminated"
    after = eliminated[0]
    assert all(good in c and close in c for n, c, d in drive.states if n >= after and not d)
    # Its remaining items are parked (released), never deleted.
    statuses = _statuses(db_session, study, bad)
    assert statuses.get("parked", 0) > 0
    assert sum(statuses.values()) == PROMPTS * 2
    # Contenders share prompts: the ranks judged form one order, each checkpoint a prefix of
    # the frontier; the eliminated one stopped on fewer prompts.
    ranks = _judged_ranks(db_session, study)
    assert max(ranks[good] | ranks[close]) < study.allocation_frontier
    assert len(ranks[good] & ranks[close]) >= 0.8 * len(ranks[good] | ranks[close])
    assert len(ranks[bad]) < len(ranks[good])
    # The statistics take uneven coverage as it is: every verdict is in the evidence.
    evidence = load_study_evidence(db_session, study.id)
    assert evidence.n_judgements == drive.verdicts
    # Nothing is served once decided, and the pages say when it stopped.
    for rater in raters:
        assert rating.queue_state(db_session, rater).item is None
        assert not allocation.top_up(db_session, rater)
    view = allocation.describe(db_session, study)
    assert view is not None
    assert f"decided after {drive.verdicts} of {budget} verdicts" in view.line
    assert leases.completion(db_session, study).parked > 0


def test_resume_serves_again_and_a_late_verdict_counts(db_session: Session, tmp_path: Path) -> None:
    lab = _lab(db_session, tmp_path)
    good, close, bad = (c.id for c in lab.trained)
    study = _adaptive(db_session, lab)
    late_rater = lab.raters[2].id
    # The third rater opens an item and keeps it on screen while the others finish the study.
    held = rating.queue_state(db_session, late_rater).item
    assert held is not None
    db_session.commit()
    wins = {good: 0.9, close: 0.85, bad: 0.1}
    drive = _drive(db_session, study, [r.id for r in lab.raters], wins, hold={late_rater})
    db_session.refresh(study)
    assert study.decided_at is not None
    decided_after = study.decided_after
    assert decided_after == drive.verdicts

    held_row = db_session.scalar(select(Assignment).where(Assignment.public_id == held.public_id))
    assert held_row is not None and held_row.status == "parked"
    assert rating.record_judgement(
        db_session,
        rater_id=late_rater,
        public_id=held.public_id,
        choice="tie",
        rationale=None,
        idempotency_key=held.idempotency_key,
    )
    db_session.commit()
    allocation.recompute_due(db_session)
    assert load_study_evidence(db_session, study.id).n_judgements == drive.verdicts + 1
    db_session.refresh(study)
    assert study.decided_after == decided_after  # the decision stands; the verdict is counted
    view = allocation.describe(db_session, study)
    assert view is not None and "1 verdicts arrived after the stop" in view.line

    with pytest.raises(ConflictError, match="higher target"):
        allocation.resume(db_session, study, 0.6)
    target = allocation.resume(db_session, study)
    db_session.commit()
    assert target > (study.allocation_p or 0)
    assert study.decided_at is None
    served = [rating.queue_state(db_session, r.id).item for r in lab.raters]
    assert any(item is not None for item in served)


def test_adaptive_creation_refuses_bad_settings_and_creates_nothing(
    db_session: Session, tmp_path: Path
) -> None:
    lab = _lab(db_session, tmp_path)
    one = [lab.trained[0].id]
    cases: list[tuple[dict[str, object], str]] = [
        ({"checkpoint_ids": one}, "at least two"),
        ({"allocation_target": 1.0}, r"within \(0.5, 1\)"),
        ({"allocation_target": 0.5}, r"within \(0.5, 1\)"),
        ({"rater_ids": [lab.raters[0].id]}, "raters per comparison need at least"),
        ({"allocation": "greedy"}, "uniform or adaptive"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConflictError, match=message):
            _adaptive(db_session, lab, **kwargs)
        db_session.rollback()
    assert db_session.scalar(select(func.count()).select_from(Study)) == 0
    assert db_session.scalar(select(func.count()).select_from(Comparison)) == 0


def test_adaptive_refuses_raters_too_few_for_blindness(db_session: Session, tmp_path: Path) -> None:
    """Two checkpoints that say the same thing on a prompt cannot both go to one rater: with two
    raters and two per comparison, a uniform study runs one comparison short; an adaptive one,
    which compares the checkpoints on the same prompts, refuses and creates nothing."""
    same = "One answer both checkpoints give. It has two sentences. And a third."
    lab = build_lab(
        db_session,
        tmp_path,
        prompts=PROMPTS,
        steps=(10, 20),
        raters=("a", "b"),
        texts={("10", 0): same, ("20", 0): same},
    )
    db_session.commit()  # the refused study rolls back to here
    with pytest.raises(ConflictError, match="too few raters for adaptive allocation"):
        _adaptive(db_session, lab)
    db_session.rollback()
    assert db_session.scalar(select(func.count()).select_from(Study)) == 0
    assert db_session.scalar(select(func.count()).select_from(Assignment)) == 0
    uniform = _adaptive(db_session, lab, allocation="uniform")
    assert uniform.allocation == "uniform"


def test_uniform_studies_serve_everything_as_before(db_session: Session, tmp_path: Path) -> None:
    lab = build_lab(db_session, tmp_path, prompts=6, steps=(10, 20))
    study = _adaptive(db_session, lab, allocation="uniform")
    assert study.allocation == "uniform" and allocation.describe(db_session, study) is None
    ranks = db_session.scalars(
        select(Comparison.prompt_rank).where(Comparison.study_id == study.id)
    )
    assert set(ranks) == {None}
    drive = _drive(db_session, study, [r.id for r in lab.raters], {c.id: 0.5 for c in lab.trained})
    assert drive.verdicts == allocation.budget(db_session, study) == 6 * 2 * 2


def test_admin_pages_create_show_and_resume_an_adaptive_study(
    client: Any, db_session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The form draws the study's seed (its prompt order and sides); fixed here, so that the
    # drive below decides at a look with P short of 1 (a target left to resume with).
    monkeypatch.setattr(studies.random, "SystemRandom", lambda: random.Random(7))
    lab = _lab(db_session, tmp_path, raters=("a", "b", "c", "admin"))
    good, close, bad = (c.id for c in lab.trained)
    raters = [r.id for r in lab.raters if r.role != "admin"]
    login(client, lab.tokens["admin"])
    csrf = form_value(client.get("/admin/studies/new").text, "csrf_token")
    form = {
        "csrf_token": csrf,
        "name": "web-adaptive",
        "checkpoints": [str(c) for c in (good, close, bad)],
        "prompt_set": str(lab.prompt_set_id),
        "raters": [str(r) for r in raters],
        "attention_check_rate": "0",
        "allocation": "adaptive",
        "allocation_target": "0.9",
    }
    refused = client.post("/admin/studies", data={**form, "checkpoints": str(good)})
    assert refused.status_code == 409 and "at least two" in refused.text
    refused = client.post("/admin/studies", data={**form, "allocation_target": "1.2"})
    assert refused.status_code == 409 and "within (0.5, 1)" in refused.text
    assert db_session.scalar(select(func.count()).select_from(Study)) == 0
    created = client.post("/admin/studies", data=form, follow_redirects=False)
    assert created.status_code == 303
    study = db_session.scalar(select(Study).where(Study.name == "web-adaptive"))
    assert study is not None and study.allocation == "adaptive"
    page = client.get(f"/admin/studies/{study.id}").text
    assert "adaptive: 0 of 480 verdicts so far, 3 checkpoint(s) in contention" in page

    drive = _drive(db_session, study, raters, {good: 0.9, close: 0.8, bad: 0.1})
    db_session.refresh(study)
    assert study.decided_after is not None, "never decided"
    line = f"decided after {study.decided_after} of 480 verdicts"
    assert study.decided_after == drive.verdicts
    for path in (f"/admin/studies/{study.id}", f"/admin/studies/{study.id}/qc"):
        assert line in client.get(path).text, path
    assert "held back by adaptive allocation" in client.get(f"/admin/studies/{study.id}/qc").text

    resumed = client.post(
        f"/admin/studies/{study.id}/resume", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert resumed.status_code == 303 and "resumed" in resumed.headers["location"]
    db_session.refresh(study)
    assert study.decided_at is None and study.allocation_target > 0.9
    assert any(rating.queue_state(db_session, r).item is not None for r in raters)


def test_raters_asking_at_once_never_get_the_same_item(pg_engine: Engine, tmp_path: Path) -> None:
    """Committed, on separate connections: every rater of an adaptive study asks for work at
    the same moment, again and again, and each served item goes to one rater only."""
    names = tuple(f"r{i}" for i in range(4))
    try:
        with Session(pg_engine, expire_on_commit=False) as session:
            lab = build_lab(session, tmp_path, prompts=PROMPTS, steps=(10, 20, 30), raters=names)
            _adaptive(session, lab)
            raters = [r.id for r in lab.raters]
        barrier = threading.Barrier(len(raters))

        def ask(rater: int) -> list[tuple[str, int]]:
            got = []
            with Session(pg_engine) as session:
                for _ in range(5):
                    barrier.wait()
                    item = rating.queue_state(session, rater).item
                    session.commit()
                    if item is None:
                        continue
                    row = session.scalar(
                        select(Assignment).where(Assignment.public_id == item.public_id)
                    )
                    assert row is not None and row.rater_id == rater
                    got.append((item.public_id, row.id))
                    rating.record_judgement(
                        session,
                        rater_id=rater,
                        public_id=item.public_id,
                        choice="tie",
                        rationale=None,
                        idempotency_key=item.idempotency_key,
                    )
                    session.commit()
                    allocation.recompute_due(session)
            return got

        with ThreadPoolExecutor(len(raters)) as pool:
            served = [item for items in pool.map(ask, raters) for item in items]
        assert len(served) == 5 * len(raters)
        assert len({public_id for public_id, _ in served}) == len(served)
        assert len({row for _, row in served}) == len(served)
    finally:
        truncate_all(pg_engine)
