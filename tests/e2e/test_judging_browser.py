"""Raters and admins in a real browser: invite, keyboard and mouse, resume, undo, no-JS, XSS, QC."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from judging.data.models import Judgement
from judging.settings import PROJECT_ROOT
from judging.studies import service as studies
from tests.judging_helpers import Lab, build_lab

SCREENSHOTS = PROJECT_ROOT / "screenshots"
RUN = "hidden-run-xyz"
STEP = 9876
HOSTILE = "Here: <script>alert(1)</script> and <img src=x onerror=alert(1)> **bold**"
LONG = (
    "Photosynthesis turns light into chemical energy.\n\n1. Light reactions split water.\n"
    "2. The Calvin cycle fixes CO2 into sugar.\n\nIn short: **light in, sugar out**."
)


def _lab(session: Session, engine: Engine, tmp_path: Path, **kwargs: Any) -> Lab:
    # Distinctive ids, so "no id in the page" is a meaningful check and not a clash with counts.
    with engine.begin() as conn:
        conn.execute(text("ALTER SEQUENCE generations_id_seq RESTART WITH 770001"))
        conn.execute(text("ALTER SEQUENCE checkpoints_id_seq RESTART WITH 660001"))
    lab = build_lab(session, tmp_path, steps=(STEP,), run_name=RUN, **kwargs)
    return lab


def _study(session: Session, lab: Lab, raters: list[int], attention: float = 0.0) -> int:
    study = studies.create_study(
        session,
        name="browser study",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=raters,
        attention_check_rate=attention,
        seed=5,
    )
    session.commit()
    return study.id


def _settled(page: Page) -> None:
    """Wait until htmx has settled the last swap: rate.js ignores keys until then (a key pressed
    mid-swap would judge an item not yet wired up), so a test must not type into that window."""
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)


def _current(page: Page) -> str:
    action = page.locator("form.judge-form").get_attribute("action")
    assert action is not None
    return action


def _no_identity(html: str) -> None:
    assert RUN not in html and str(STEP) not in html
    assert not re.search(r"\b(77000\d|66000\d)\b", html), "a generation or checkpoint id leaked"


def test_rater_keyboard_mouse_resume_undo(
    live_server: str, committed_session: Session, pg_engine: Engine, page: Page, tmp_path: Path
) -> None:
    lab = _lab(
        committed_session,
        pg_engine,
        tmp_path,
        prompts=5,
        # Two different hostile texts: a rater is never shown one text twice in a study.
        texts={("base", 0): HOSTILE, (str(STEP), 1): f"{HOSTILE} again", (str(STEP), 2): LONG},
    )
    _study(committed_session, lab, [lab.raters[0].id, lab.raters[1].id])
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    page.goto(f"{live_server}/invite#{lab.tokens['alice']}")
    expect(page).to_have_url(f"{live_server}/rate")
    expect(page.locator("#total-count")).to_have_text("5")
    expect(page.locator(".shortcuts")).to_contain_text("Both bad")
    _no_identity(page.content())
    first = _current(page)

    page.keyboard.press("1")  # keyboard: left is better
    expect(page.locator("#done-count")).to_have_text("1")
    second = _current(page)
    assert second != first
    page.get_by_role("button", name="Response 2 is better").click()  # mouse
    expect(page.locator("#done-count")).to_have_text("2")
    third = _current(page)

    page.reload()  # resume: same place, same progress
    expect(page.locator("#done-count")).to_have_text("2")
    assert _current(page) == third
    page.keyboard.press("u")  # undo the mouse verdict
    expect(page.locator("#done-count")).to_have_text("1")
    expect(page.locator("#flash")).to_contain_text("withdrawn")
    assert _current(page) == second
    _settled(page)
    page.keyboard.press("ArrowRight")
    expect(page.locator("#done-count")).to_have_text("2")
    box = page.locator("textarea[name=rationale]")
    box.fill("clearer answer")
    box.press("3")  # typing in the rationale must not trigger a shortcut
    expect(box).to_have_value("clearer answer3")
    expect(page.locator("#done-count")).to_have_text("2")
    box.evaluate("el => el.blur()")
    page.keyboard.press("3")
    expect(page.locator("#done-count")).to_have_text("3")
    stored = committed_session.execute(
        select(Judgement.choice, Judgement.rationale, Judgement.time_on_item_ms)
        .where(Judgement.withdrawn_at.is_(None))  # the undone verdict is kept, marked withdrawn
        .order_by(Judgement.id)
    ).all()
    assert [(c, r) for c, r, _ in stored] == [
        ("left", None),
        ("right", None),
        ("tie", "clearer answer3"),
    ]
    assert all(ms is not None and ms >= 0 for _, _, ms in stored)
    assert dialogs == []
    assert page.locator(".response script, .response img, .prompt script").count() == 0
    _no_identity(page.content())


def test_hostile_response_shows_as_text(
    live_server: str, committed_session: Session, pg_engine: Engine, page: Page, tmp_path: Path
) -> None:
    # Hostile on both sides, but not the same text (identical pairs never reach a rater).
    texts = {(who, i): f"{HOSTILE} ({who} {i})" for who in ("base", str(STEP)) for i in range(2)}
    lab = _lab(committed_session, pg_engine, tmp_path, prompts=2, texts=texts)
    _study(committed_session, lab, [lab.raters[0].id, lab.raters[1].id])
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{live_server}/invite#{lab.tokens['bob']}")
    responses = page.locator(".response .md")
    expect(responses.first).to_contain_text("<script>alert(1)</script>")
    expect(responses.nth(1)).to_contain_text("<img src=x onerror=alert(1)>")
    assert page.locator("main script, main img").count() == 0
    assert page.locator(".response strong").count() == 2  # markdown still renders
    page.wait_for_timeout(200)
    assert dialogs == []


def test_no_javascript_can_still_judge(
    live_server: str, committed_session: Session, pg_engine: Engine, browser: Any, tmp_path: Path
) -> None:
    lab = _lab(committed_session, pg_engine, tmp_path, prompts=3)
    _study(committed_session, lab, [lab.raters[0].id, lab.raters[1].id])
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        # No script to read the fragment: the rater pastes the token into the sign-in form.
        page.goto(f"{live_server}/invite#{lab.tokens['alice']}")
        page.locator("input[name=token]").fill(lab.tokens["alice"])
        page.get_by_role("button", name="Sign in").click()
        first = _current(page)
        page.get_by_role("button", name="Tie").click()
        expect(page.locator("#done-count")).to_have_text("1")
        expect(page.locator("#flash")).to_contain_text("Saved")
        page.locator("input[name=reason]").fill("need to look this up")
        page.get_by_role("button", name="Skip for now").click()
        expect(page.locator("#flash")).to_contain_text("Skipped")
        page.get_by_role("button", name="Undo last verdict").click()
        expect(page.locator("#done-count")).to_have_text("0")
        assert _current(page) == first
    finally:
        context.close()


def test_two_raters_then_admin_sees_agreement(
    live_server: str, committed_session: Session, pg_engine: Engine, browser: Any, tmp_path: Path
) -> None:
    texts = {(str(STEP), 0): LONG, ("base", 0): "Plants use sunlight to make food."}
    lab = _lab(
        committed_session,
        pg_engine,
        tmp_path,
        prompts=4,
        raters=("alice", "bob", "admin"),
        texts=texts,
        base_samples=3,  # spare base samples: attention checks shown to no one twice
    )
    study_id = _study(committed_session, lab, [lab.raters[0].id, lab.raters[1].id], attention=0.5)
    SCREENSHOTS.mkdir(exist_ok=True)
    contexts = [browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(3)]
    try:
        alice, bob, admin = (c.new_page() for c in contexts)
        alice.goto(f"{live_server}/invite#{lab.tokens['alice']}")
        bob.goto(f"{live_server}/invite#{lab.tokens['bob']}")
        total = int(alice.locator("#total-count").inner_text())
        assert (
            total == int(bob.locator("#total-count").inner_text()) == 6
        )  # 4 + 2 attention, 2 raters
        alice.screenshot(path=str(SCREENSHOTS / "rater-page.png"), full_page=True)
        for i in range(total):
            alice.keyboard.press("1")
            expect(alice.locator("#done-count")).to_have_text(str(i + 1))
            bob.keyboard.press("1" if i % 2 else "3")
            expect(bob.locator("#done-count")).to_have_text(str(i + 1))
        expect(alice.locator(".done-card")).to_contain_text("All done")

        admin.goto(f"{live_server}/invite#{lab.tokens['admin']}")
        expect(admin).to_have_url(f"{live_server}/admin")
        admin.screenshot(path=str(SCREENSHOTS / "admin-page.png"), full_page=True)
        admin.goto(f"{live_server}/admin/studies/{study_id}/qc")
        expect(admin.locator("#raw-agreement")).not_to_have_text("–")
        expect(admin.locator("#krippendorff-alpha")).not_to_have_text("–")
        alice_row = admin.locator("tr[data-rater=alice]")
        expect(alice_row).to_contain_text("100%")  # always picked the left side
        expect(alice_row.locator("td.warn").first).to_be_visible()
        admin.screenshot(path=str(SCREENSHOTS / "qc-page.png"), full_page=True)
        admin.goto(f"{live_server}/admin/studies/{study_id}")
        expect(admin.locator("table.ckpt-table")).to_contain_text(f"{RUN}@{STEP}")
        admin.screenshot(path=str(SCREENSHOTS / "study-page.png"), full_page=True)
        # Bob's second device (a new tab, same session) resumes at the same place: done.
        bob_again = contexts[1].new_page()
        bob_again.goto(f"{live_server}/rate")
        expect(bob_again.locator(".done-card")).to_be_visible()
    finally:
        for c in contexts:
            c.close()


def test_narrow_screen_stacks_responses(
    live_server: str, committed_session: Session, pg_engine: Engine, browser: Any, tmp_path: Path
) -> None:
    lab = _lab(
        committed_session,
        pg_engine,
        tmp_path,
        prompts=2,
        texts={(str(STEP), 0): LONG, (str(STEP), 1): LONG},
    )
    _study(committed_session, lab, [lab.raters[0].id, lab.raters[1].id])
    context = browser.new_context(viewport={"width": 420, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{live_server}/invite#{lab.tokens['alice']}")
        boxes = [page.locator(".response").nth(i).bounding_box() for i in range(2)]
        assert boxes[0] and boxes[1] and boxes[1]["y"] > boxes[0]["y"] + boxes[0]["height"] - 1
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "rater-page-narrow.png"), full_page=True)
    finally:
        context.close()


# Presses "1" the moment a new item is in the page (a MutationObserver runs right after htmx
# swaps it in, before htmx has wired up its forms): the fastest a rater could react.
PRESS_ON_ARRIVAL = """
() => {
  window.pressedOn = [];
  let last = document.querySelector("form.judge-form").getAttribute("action");
  new MutationObserver(() => {
    const form = document.querySelector("form.judge-form");
    const now = form ? form.getAttribute("action") : null;
    if (now && now !== last) {
      last = now;
      window.pressedOn.push(now);
      document.dispatchEvent(new KeyboardEvent("keydown", {key: "1", bubbles: true}));
    }
  }).observe(document.getElementById("queue"), {childList: true, subtree: true});
}
"""


def _verdicts(session: Session) -> list[tuple[str, str]]:
    from judging.data.models import Assignment

    session.expire_all()
    rows = session.execute(
        select(Assignment.public_id, Judgement.choice)
        .join(Judgement, Judgement.assignment_id == Assignment.id)
        .where(Judgement.withdrawn_at.is_(None))
        .order_by(Judgement.id)
    ).all()
    return [(f"/rate/{public_id}", choice) for public_id, choice in rows]


def test_a_key_pressed_as_the_next_item_arrives_judges_that_item(
    live_server: str, committed_session: Session, pg_engine: Engine, page: Page, tmp_path: Path
) -> None:
    lab = _lab(committed_session, pg_engine, tmp_path, prompts=8)
    _study(committed_session, lab, [lab.raters[0].id, lab.raters[1].id])
    page.goto(f"{live_server}/invite#{lab.tokens['alice']}")
    expect(page.locator("#total-count")).to_have_text("8")
    _settled(page)
    first = _current(page)
    page.evaluate(PRESS_ON_ARRIVAL)
    page.keyboard.press("1")
    expect(page.locator(".done-card")).to_contain_text("All done", timeout=15_000)
    expect(page.locator("#done-count")).to_have_text("8")
    pressed = page.evaluate("window.pressedOn")
    assert len(pressed) == 7
    # Each key judged the item on screen when it was pressed, and only that one.
    assert _verdicts(committed_session) == [(item, "left") for item in [first, *pressed]]


def test_a_key_pressed_before_the_next_item_is_shown_is_not_taken_and_says_so(
    live_server: str, committed_session: Session, pg_engine: Engine, page: Page, tmp_path: Path
) -> None:
    lab = _lab(committed_session, pg_engine, tmp_path, prompts=3)
    _study(committed_session, lab, [lab.raters[0].id, lab.raters[1].id])
    page.goto(f"{live_server}/invite#{lab.tokens['alice']}")
    _settled(page)
    first = _current(page)
    # "2" while the verdict on the first item is on its way: the next item is not on screen.
    page.evaluate(
        """() => document.addEventListener("htmx:beforeRequest", () => {
            document.dispatchEvent(new KeyboardEvent("keydown", {key: "2", bubbles: true}));
        }, {once: true})"""
    )
    page.keyboard.press("1")
    expect(page.locator("#done-count")).to_have_text("1")
    expect(page.locator("#flash")).to_contain_text("not taken")
    _settled(page)
    page.wait_for_timeout(300)
    assert _verdicts(committed_session) == [(first, "left")]
    expect(page.locator("#done-count")).to_have_text("1")
    # The next key works as usual, and the notice goes with the next verdict.
    page.keyboard.press("3")
    expect(page.locator("#done-count")).to_have_text("2")
    expect(page.locator("#flash")).not_to_contain_text("not taken")
    assert [choice for _, choice in _verdicts(committed_session)] == ["left", "tie"]
