"""The admin study form and the rater's keyboard path under fast keys, in a real browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from judging.data.models import Judgement, Study
from judging.settings import PROJECT_ROOT
from judging.studies import service as studies
from tests.e2e.conftest import sign_in
from tests.judging_helpers import Lab, build_lab, judge_queue

SCREENSHOTS = PROJECT_ROOT / "screenshots"
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
    sign_in(page, live_server, lab.tokens["admin"])
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
    sign_in(page, live_server, lab.tokens["alice"])
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
        # Without JavaScript the fragment is not posted: paste the token, as the page says.
        page.goto(f"{live_server}/invite#{lab.tokens['bob']}")
        page.locator("input[name=token]").fill(lab.tokens["bob"])
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{live_server}/rate")
        page.get_by_role("button", name="Tie").click()
        expect(page.locator(".done-card")).to_contain_text("All done")
        expect(page.locator("#flash")).to_contain_text("Saved")
        expect(page.locator("#flash")).not_to_contain_text("next one")
    finally:
        context.close()


def test_verdict_bar_reachable_on_a_very_long_response(
    live_server: str, committed_session: Session, browser: Any, tmp_path: Path
) -> None:
    # Two different long texts (identical ones would be a tie recorded without asking anyone).
    texts = {("base", 0): LONG, ("10", 0): LONG.replace("careful", "thorough")}
    lab = build_lab(
        committed_session, tmp_path, prompts=1, steps=(10,), run_name="longrun", texts=texts
    )
    _study(committed_session, lab)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        sign_in(page, live_server, lab.tokens["alice"])
        assert page.evaluate("document.documentElement.scrollHeight") > 3 * 800
        button = page.get_by_role("button", name="Response 2 is better")
        box = button.bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 800, box
        # Clicking it without scrolling records the verdict.
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        expect(page.locator("#done-count")).to_have_text("1")
    finally:
        context.close()


def test_qc_page_one_click_exclusion_and_screenshot(
    live_server: str, committed_session: Session, page: Page, tmp_path: Path
) -> None:
    from sqlalchemy import delete

    from judging.data.models import Generation, Prompt

    lab = build_lab(
        committed_session,
        tmp_path,
        prompts=12,
        steps=(10, 20),
        raters=("alice", "bob", "carol", "admin"),
        run_name="qcrun",
        base_samples=3,
    )
    categories = ["how-to", "advice", "creative-writing"]
    for i, pid in enumerate(lab.prompt_ids):
        prompt = committed_session.get(Prompt, pid)
        assert prompt is not None
        prompt.category = categories[i % 3]
    committed_session.execute(  # step 20 has no response to the last prompt
        delete(Generation).where(
            Generation.checkpoint_id == lab.trained[1].id,
            Generation.prompt_id == lab.prompt_ids[-1],
        )
    )
    alice, bob, carol, _admin = lab.raters
    study = studies.create_study(
        committed_session,
        name="quality study",
        checkpoint_ids=[c.id for c in lab.trained],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[alice.id, bob.id, carol.id],
        attention_check_rate=0.25,
        seed=7,
    )
    step20 = lab.trained[1].id

    def honest(otherwise: str) -> Any:
        # The intact side on attention checks; step 20 wins; step 10 gets `otherwise`.
        return lambda a, c: (
            a.checkpoint_side if c.kind == "attention" or c.checkpoint_id == step20 else otherwise
        )

    picks = {
        alice.id: honest("tie"),
        bob.id: honest("left"),
        carol.id: lambda a, c: "right" if a.checkpoint_side == "left" else "left",  # careless
    }
    for rater_id, pick in picks.items():
        judge_queue(committed_session, rater_id, pick)
    committed_session.commit()

    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, live_server, lab.tokens["admin"])
    page.goto(f"{live_server}/admin/studies/{study.id}/qc")
    expect(page.locator("#uneven-coverage")).to_contain_text("Uneven prompt coverage")
    expect(page.locator("table.qc-checkpoints")).to_contain_text("p011")
    expect(page.locator("table.qc-categories")).to_contain_text("creative-writing")
    expect(page.locator("#fleiss-kappa")).not_to_have_text("–")
    expect(page.locator("table.qc-pairs")).to_contain_text("alice · bob")
    carol_row = page.locator("tr[data-rater=carol]")
    expect(carol_row).to_contain_text("below 80% pass rate")
    before = page.locator("table.qc-checkpoints td.win-rate").all_inner_texts()
    carol_row.get_by_role("button", name="Exclude from statistics").click()
    expect(page.locator(".flash").first).to_contain_text("excluded")
    expect(carol_row).to_contain_text("excluded by admin")
    after = page.locator("table.qc-checkpoints td.win-rate").all_inner_texts()
    assert after != before  # carol's verdicts no longer count
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "qc-page-quality.png"), full_page=True)
    carol_row.get_by_role("button", name="Count again").click()
    expect(carol_row.get_by_role("button", name="Exclude from statistics")).to_be_visible()
    assert page.locator("table.qc-checkpoints td.win-rate").all_inner_texts() == before


def test_keys_work_again_after_a_refused_verdict(
    live_server: str, committed_session: Session, page: Page, tmp_path: Path
) -> None:
    lab = build_lab(committed_session, tmp_path, prompts=3, run_name="errrun")
    study_id = _study(committed_session, lab)
    sign_in(page, live_server, lab.tokens["alice"])
    expect(page.locator("#total-count")).to_have_text("3")
    study = committed_session.get(Study, study_id)
    assert study is not None
    study.status = "closed"
    committed_session.commit()
    page.keyboard.press("1")
    expect(page.locator("#flash")).to_contain_text("Not saved")
    study.status = "running"
    committed_session.commit()
    page.keyboard.press("1")  # the refused request must not leave the keyboard locked
    expect(page.locator("#done-count")).to_have_text("1")
