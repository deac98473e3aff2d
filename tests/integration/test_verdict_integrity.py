"""Verdicts are never lost or silently dropped: idempotency keys, named undo, withdrawal audit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from judging.analysis.exports import judgement_records
from judging.data.models import AuditEntry, Judgement, Study
from judging.studies import qc
from judging.studies import service as studies
from tests.judging_helpers import Lab, build_lab, form_value, item_id, start_rating


def _live(session: Session) -> list[Judgement]:
    return list(session.scalars(select(Judgement).where(Judgement.withdrawn_at.is_(None))))


@pytest.fixture
def lab(db_session: Session, tmp_path: Path) -> Lab:
    lab = build_lab(db_session, tmp_path, prompts=4, steps=(10,), raters=("alice", "bob"))
    studies.create_study(
        db_session,
        name="integrity",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters],
        attention_check_rate=0,
    )
    return lab


def test_key_reused_on_another_item_is_409_and_nothing_lost(
    client: Any, lab: Lab, db_session: Session
) -> None:
    html, csrf = start_rating(client, lab.tokens["alice"])
    first, key = item_id(html), form_value(html, "key")
    assert (
        client.post(
            f"/rate/{first}", data={"choice": "left", "csrf_token": csrf, "key": key}
        ).status_code
        == 200
    )
    second = item_id(client.get("/rate").text)
    assert second != first
    reused = client.post(
        f"/rate/{second}",
        data={"choice": "right", "csrf_token": csrf, "key": key},
        follow_redirects=False,
    )
    assert reused.status_code == 409 and "another item" in reused.text
    live = _live(db_session)
    assert [(j.choice, j.idempotency_key) for j in live] == [("left", key)]
    html = client.get("/rate").text
    assert item_id(html) == second  # still waiting for its verdict
    fresh = client.post(
        f"/rate/{second}",
        data={"choice": "right", "csrf_token": csrf, "key": form_value(html, "key")},
        follow_redirects=False,
    )
    assert fresh.status_code == 303 and "recorded" in fresh.headers["location"]
    assert len(_live(db_session)) == 2


def test_undo_names_its_verdict_double_undo_withdraws_one(
    client: Any, lab: Lab, db_session: Session
) -> None:
    html, csrf = start_rating(client, lab.tokens["alice"])
    judged = []
    for _ in range(2):
        item = item_id(html)
        client.post(
            f"/rate/{item}",
            data={"choice": "tie", "csrf_token": csrf, "key": form_value(html, "key")},
        )
        judged.append(item)
        html = client.get("/rate").text
    assert form_value(html, "undo_item") == judged[-1]
    for _ in range(2):  # a double click: both name the same verdict
        response = client.post(
            "/rate/undo", data={"csrf_token": csrf, "undo_item": judged[-1]}, follow_redirects=False
        )
    assert "nothing-to-undo" in response.headers["location"]
    rows = list(db_session.scalars(select(Judgement).order_by(Judgement.id)))
    assert len(rows) == 2  # undo never deletes
    assert rows[0].withdrawn_at is None and rows[1].withdrawn_at is not None
    audit = db_session.scalars(select(AuditEntry).where(AuditEntry.action == "withdraw")).all()
    assert [(a.judgement_id, a.actor_id) for a in audit] == [(rows[1].id, lab.raters[0].id)]
    assert item_id(client.get("/rate").text) == judged[-1]  # back in the queue
    nameless = client.post("/rate/undo", data={"csrf_token": csrf})
    assert nameless.status_code == 400 and "which verdict" in nameless.text


def test_withdrawn_verdicts_are_ignored_everywhere(
    client: Any, lab: Lab, db_session: Session
) -> None:
    html, csrf = start_rating(client, lab.tokens["alice"])
    item = item_id(html)
    client.post(
        f"/rate/{item}", data={"choice": "left", "csrf_token": csrf, "key": form_value(html, "key")}
    )
    client.post("/rate/undo", data={"csrf_token": csrf, "undo_item": item})
    html = client.get("/rate").text
    assert item_id(html) == item
    client.post(
        f"/rate/{item}",
        data={"choice": "right", "csrf_token": csrf, "key": form_value(html, "key")},
    )
    study = db_session.scalars(select(Study)).one()
    assert db_session.scalar(select(func.count()).select_from(Judgement)) == 2
    records = judgement_records(db_session, study.id, anonymise=False, key=b"k")
    assert [r["choice"] for r in records] == ["right"]
    report = qc.study_qc(db_session, study)
    assert report.done == 1 and sum(report.checkpoints[0].outcomes.values()) == 1
