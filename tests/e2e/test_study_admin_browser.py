"""The admin study form and the rater's keyboard path under fast keys, in a real browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from judging.data.models import Judgement, Study
from judging.studies import service as studies
from tests.judging_helpers import Lab, build_lab

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

LONG = "\n\n".join(f"Paragraph {i}: a long and careful answer goes on." for i in range(200))


def _study(session: Session, lab: Lab) -> int:
    study = studies.create_study(
        session,
        name="fast keys",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[lab.raters[0].id, lab.raters[1].id],
        attention_check_rate=0,
        seed=3,
    )
    session.commit()
    return study.id


def _judgements(session: Session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Judgement)) or 0


def test_admin_creates_a_study_through_the_form(
    live_server: str, committed_session: Session, page: Page, tmp_path: Path
) -> None:
    lab = build_lab(
        committed_session,
        tmp_path,
        prompts=3,
        steps=(10, 20),
        raters=("alice", "bob", "carol", "admin"),
        run_name="formrun",
    )
    committed_session.commit()
    page.goto(f"{live_server}/invite/{lab.tokens['admin']}")
    page.get_by_role("link", name="New study").click()
    expect(page).to_have_url(f"{live_server}/admin/studies/new")
    # Every rater checkbox carries the rater's name as its label; the set is listed by name.
    for name in ("alice", "bob", "carol", "admin"):
        expect(page.get_by_label(name, exact=True)).to_be_visible()
    options = page.locator("select[name=prompt_set] option")
    expect(options).to_have_text(["formrun-heldout"])
    page.get_by_label("Name", exact=True).fill("form study")
    page.get_by_label("formrun@10", exact=True).check()
    page.locator("select[name=prompt_set]").select_option(label="formrun-heldout")
    page.get_by_label("alice", exact=True).check()
    page.get_by_label("bob", exact=True).check()
    page.get_by_label("Attention-check rate").fill("0")
    page.get_by_role("button", name="Create study").click()

    expect(page.locator("h1")).to_contain_text("form study")
    study_id = committed_session.scalar(select(Study.id).where(Study.name == "form study"))
    assert study_id is not None and page.url.endswith(f"/admin/studies/{study_id}")
    expect(page.locator("table.ckpt-table")).to_contain_text("formrun@10")
    # "Add rater" offers the raters not yet in the study, by name.
    expect(page.locator("select[name=rater] option")).to_have_text(["admin", "carol"])
    page.locator("select[name=rater]").select_option(label="carol")
    page.get_by_role("button", name="Add rater").click()
    expect(page.locator(".flash")).to_contain_text("rater added")
    expect(page.locator("select[name=rater] option")).to_have_text(["admin"])


def test_fast_keys_stay_on_htmx_and_all_done_says_so(
    live_server: str, committed_session: Session, page: Page, tmp_path: Path
) -> None:
    lab = build_lab(committed_session, tmp_path, prompts=15, run_name="fastrun")
    _study(committed_session, lab)
    navigations: list[str] = []
    page.goto(f"{live_server}/invite/{lab.tokens['alice']}")
    expect(page.locator("#total-count")).to_have_text("15")
    page.on(
        "framenavigated",
        lambda frame: navigations.append(frame.url) if frame == page.main_frame else None,
    )
    page.evaluate("window.__samePage = true")
    for _ in range(3):  # bursts: keys with no delay at all, right after each swap
        for _ in range(15):
            page.keyboard.press("1", delay=0)
        page.wait_for_load_state("networkidle")
    for _ in range(40):  # finish the queue at full speed
        if page.locator(".done-card").count():
            break
        page.keyboard.press("1", delay=0)
        page.wait_for_timeout(30)
    expect(page.locator(".done-card")).to_contain_text("All done")
    assert navigations == [], f"full page loads: {navigations}"
    assert page.evaluate("window.__samePage === true")
    assert "flash=" not in page.url
    expect(page.locator("#done-count")).to_have_text("15")
    assert _judgements(committed_session) == 15
    expect(page.locator("#flash")).not_to_contain_text("next one")


def test_all_done_flash_without_javascript(
    live_server: str, committed_session: Session, browser: Any, tmp_path: Path
) -> None:
    lab = build_lab(committed_session, tmp_path, prompts=1, run_name="lastrun")
    _study(committed_session, lab)
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{live_server}/invite/{lab.tokens['bob']}")
        page.get_by_role("button", name="Tie").click()
        expect(page.locator(".done-card")).to_contain_text("All done")
        expect(page.locator("#flash")).to_contain_text("Saved")
        expect(page.locator("#flash")).not_to_contain_text("next one")
    finally:
        context.close()


def test_verdict_bar_reachable_on_a_very_long_response(
    live_server: str, committed_session: Session, browser: Any, tmp_path: Path
) -> None:
    texts = {("base", 0): LONG, ("10", 0): LONG}
    lab = build_lab(
        committed_session, tmp_path, prompts=1, steps=(10,), run_name="longrun", texts=texts
    )
    _study(committed_session, lab)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.goto(f"{live_server}/invite/{lab.tokens['alice']}")
        assert page.evaluate("document.documentElement.scrollHeight") > 3 * 800
        button = page.get_by_role("button", name="Response 2 is better")
        box = button.bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 800, box
        # Clicking it without scrolling records the verdict.
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        expect(page.locator("#done-count")).to_have_text("1")
    finally:
        context.close()
