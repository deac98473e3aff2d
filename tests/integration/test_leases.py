"""A study always finishes: expired leases and repeated skips go to another rater, "cannot
judge" takes an item out of a queue with its reason, and every comparison ends with N verdicts
or an explicit reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data.models import Assignment, AuditEntry, Comparison, Study
from judging.errors import ConflictError
from judging.studies import leases, qc, rating
from judging.studies import service as studies
from tests.judging_helpers import Lab, build_lab, form_value, item_id, judge_queue, login, tie

LEASE = timedelta(minutes=30)


def _study(session: Session, lab: Lab, raters: int) -> Study:
    return studies.create_study(
        session,
        name="leases",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters[:raters]],
        attention_check_rate=0,
        seed=4,
    )


def _holders(session: Session, comparison_id: int) -> dict[int, str]:
    rows = session.scalars(select(Assignment).where(Assignment.comparison_id == comparison_id))
    return {a.rater_id: a.status for a in rows}


def test_unjudged_served_item_returns_to_the_pool(db_session: Session, tmp_path: Path) -> None:
    lab = build_lab(db_session, tmp_path, prompts=4, raters=("alice", "bob", "carol"))
    alice, bob, carol = lab.raters
    study = _study(db_session, lab, 3)
    start = datetime.now(UTC)
    item = rating.next_assignment(db_session, alice.id)
    assert item is not None
    rating.serve(db_session, item, now=start)
    before = set(_holders(db_session, item.comparison_id))
    assert leases.release_expired(db_session, lease=LEASE, now=start + LEASE / 2) == 0
    assert leases.release_expired(db_session, lease=LEASE, now=start + LEASE * 2) == 1
    holders = _holders(db_session, item.comparison_id)
    assert holders[alice.id] == "released" and len(holders) == 3
    (newcomer,) = set(holders) - before
    assert newcomer in (bob.id, carol.id) and holders[newcomer] == "pending"
    entry = db_session.scalars(select(AuditEntry).where(AuditEntry.action == "lease_expired")).one()
    assert entry.details["from"] == alice.id and entry.details["to"] == newcomer
    with pytest.raises(ConflictError, match="another rater"):
        rating.record_judgement(
            db_session,
            rater_id=alice.id,
            public_id=item.public_id,
            choice="left",
            rationale=None,
            idempotency_key="late",
        )
    following = rating.next_assignment(db_session, alice.id)
    assert following is not None and following.id != item.id
    # The QC totals count the item once, with its new rater: still 4 comparisons x 2 verdicts.
    assert qc.study_qc(db_session, study).total == 8


def test_lease_without_another_eligible_rater_stays(db_session: Session, tmp_path: Path) -> None:
    lab = build_lab(db_session, tmp_path, prompts=3)
    alice, _ = lab.raters
    _study(db_session, lab, 2)
    start = datetime.now(UTC)
    item = rating.next_assignment(db_session, alice.id)
    assert item is not None
    rating.serve(db_session, item, now=start)
    assert leases.release_expired(db_session, lease=LEASE, now=start + LEASE * 2) == 0
    assert item.status == "served"


def _skip(session: Session, rater_id: int, public_id: str) -> None:
    leases.skip_item(session, rater_id=rater_id, public_id=public_id, reason="unsure", max_skips=2)


def test_repeated_skips_go_to_another_rater(db_session: Session, tmp_path: Path) -> None:
    lab = build_lab(db_session, tmp_path, prompts=4, raters=("alice", "bob", "carol"))
    alice = lab.raters[0]
    _study(db_session, lab, 3)
    item = rating.next_assignment(db_session, alice.id)
    assert item is not None
    _skip(db_session, alice.id, item.public_id)
    assert item.status == "skipped"  # once: back at the end of her own queue
    _skip(db_session, alice.id, item.public_id)
    holders = _holders(db_session, item.comparison_id)
    assert holders[alice.id] == "released" and "pending" in holders.values()
    assert db_session.scalars(select(AuditEntry).where(AuditEntry.action == "skip_released")).one()


def test_skips_without_another_rater_close_with_a_reason(
    db_session: Session, tmp_path: Path
) -> None:
    lab = build_lab(db_session, tmp_path, prompts=3)
    alice, bob = lab.raters
    study = _study(db_session, lab, 2)
    item = rating.next_assignment(db_session, alice.id)
    assert item is not None
    _skip(db_session, alice.id, item.public_id)
    _skip(db_session, alice.id, item.public_id)
    comparison = db_session.get(Comparison, item.comparison_id)
    assert comparison is not None and "skipped" in (comparison.closed_reason or "")
    # Judge everything else: the study finishes, every comparison accounted for.
    for rater in (alice, bob):
        judge_queue(db_session, rater.id, tie)
    report = leases.completion(db_session, study)
    assert report.open == 0 and report.complete == 2
    assert [c.reason for c in report.short] == [comparison.closed_reason]


def test_cannot_judge_leaves_the_queue_and_shows_on_qc(
    client: Any, db_session: Session, tmp_path: Path
) -> None:
    lab = build_lab(db_session, tmp_path, prompts=3, raters=("alice", "bob", "admin"))
    study = _study(db_session, lab, 2)
    login(client, lab.tokens["alice"])
    html = client.get("/rate").text
    item, csrf = item_id(html), form_value(html, "csrf_token")
    assert 'action="/rate/' + item + '/flag"' in html
    empty = client.post(f"/rate/{item}/flag", data={"csrf_token": csrf, "kind": "unsafe"})
    assert empty.status_code == 400 and "reason" in empty.text
    flagged = client.post(
        f"/rate/{item}/flag",
        data={"csrf_token": csrf, "kind": "unsafe", "flag_reason": "asks for <b>private</b> data"},
        follow_redirects=False,
    )
    assert flagged.status_code == 303
    assert item_id(client.get("/rate").text) != item
    row = db_session.scalars(select(Assignment).where(Assignment.public_id == item)).one()
    assert (row.status, row.flag_kind) == ("flagged", "unsafe")
    login(client, lab.tokens["admin"])
    qc_page = client.get(f"/admin/studies/{study.id}/qc").text
    assert "asks for &lt;b&gt;private&lt;/b&gt; data" in qc_page and "unsafe" in qc_page


def test_asking_for_work_hands_back_expired_leases(
    client: Any, db_session: Session, tmp_path: Path
) -> None:
    """Through the page: the next-item request releases leases that ran out (the queue summary
    says whether there are any) before it shows the queue."""
    lab = build_lab(db_session, tmp_path, prompts=3, raters=("alice", "bob", "carol"))
    _study(db_session, lab, 3)
    login(client, lab.tokens["alice"])
    item = item_id(client.get("/rate").text)
    stalled = db_session.scalars(select(Assignment).where(Assignment.public_id == item)).one()
    stalled.served_at = datetime.now(UTC) - 2 * LEASE  # the default lease is 30 minutes
    db_session.flush()
    login(client, lab.tokens["bob"])
    assert client.get("/rate").status_code == 200
    db_session.refresh(stalled)
    assert stalled.status == "released"
    moved = db_session.scalars(select(AuditEntry).where(AuditEntry.action == "lease_expired"))
    assert moved.one().details["from"] == lab.raters[0].id
