"""Rater guidelines: written by the admin (markdown, rendered safely), shown on a rater's first
visit to the study, then behind a link on every item."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data.models import Study
from tests.judging_helpers import Lab, build_lab, form_value, switch_to

GUIDE = "Prefer the **more helpful** answer.\n\n- ignore length\n\n<script>alert(1)</script>"


@pytest.fixture
def lab(db_session: Session, tmp_path: Path) -> Lab:
    return build_lab(
        db_session, tmp_path, prompts=3, steps=(10,), raters=("alice", "bob", "eve", "admin")
    )


def _create(client: Any, lab: Lab, guidelines: str) -> int:
    switch_to(client, lab.tokens["admin"])
    form = client.get("/admin/studies/new").text
    assert 'name="guidelines"' in form
    response = client.post(
        "/admin/studies",
        data={
            "csrf_token": form_value(form, "csrf_token"),
            "name": "guided",
            "checkpoints": str(lab.trained[0].id),
            "prompt_set": str(lab.prompt_set_id),
            "raters": [str(lab.raters[0].id), str(lab.raters[1].id)],
            "attention_check_rate": "0",
            "guidelines": guidelines,
            "min_attention_pass_rate": "0.9",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


def test_guidelines_first_visit_then_a_link_on_every_item(
    client: Any, db_session: Session, lab: Lab
) -> None:
    study_id = _create(client, lab, GUIDE)
    study = db_session.scalar(select(Study).where(Study.id == study_id))
    assert study is not None and study.guidelines == GUIDE.strip()
    assert study.min_attention_pass_rate == 0.9

    switch_to(client, lab.tokens["alice"])
    first = client.get("/rate").text
    # First visit: the guidelines instead of an item, rendered as safe markdown.
    assert 'id="guidelines"' in first and "<strong>more helpful</strong>" in first
    assert "<script>alert(1)</script>" not in first and "&lt;script&gt;" in first
    assert 'class="judge-form"' not in first
    fragment = client.get("/rate", headers={"HX-Request": "true"}).text
    assert 'id="guidelines"' in fragment and "<html" not in fragment
    seen = client.post(
        f"/rate/guidelines/{study_id}/seen",
        data={"csrf_token": form_value(first, "csrf_token")},
        follow_redirects=False,
    )
    assert seen.status_code == 303
    page = client.get("/rate").text
    assert 'class="judge-form"' in page and 'id="guidelines"' not in page
    link = f'href="/rate/guidelines/{study_id}"'
    assert link in page
    again = client.get(f"/rate/guidelines/{study_id}")
    assert again.status_code == 200 and "<strong>more helpful</strong>" in again.text
    # Bob has his own first visit.
    switch_to(client, lab.tokens["bob"])
    assert 'id="guidelines"' in client.get("/rate").text
    # Someone outside the study cannot read them, nor tell the study exists.
    switch_to(client, lab.tokens["eve"])
    assert client.get(f"/rate/guidelines/{study_id}").status_code == 404
    assert client.get("/rate/guidelines/999999").status_code == 404


def test_no_guidelines_no_interstitial_and_edits_are_shown_again(
    client: Any, db_session: Session, lab: Lab
) -> None:
    study_id = _create(client, lab, "   ")
    switch_to(client, lab.tokens["alice"])
    page = client.get("/rate").text
    assert 'class="judge-form"' in page and 'id="guidelines"' not in page
    assert "/rate/guidelines/" not in page
    switch_to(client, lab.tokens["admin"])
    admin_page = client.get(f"/admin/studies/{study_id}").text
    response = client.post(
        f"/admin/studies/{study_id}/guidelines",
        data={
            "csrf_token": form_value(admin_page, "csrf_token"),
            "guidelines": "New rule: *read both*.",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert "New rule" in client.get(f"/admin/studies/{study_id}").text
    switch_to(client, lab.tokens["alice"])
    assert "<em>read both</em>" in client.get("/rate").text
