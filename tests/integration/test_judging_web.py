"""The rater and admin pages over HTTP: login, blindness, validation, permissions, CSRF, undo."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from judging.data.models import Assignment, Generation, Judgement, Study
from judging.studies import rating
from judging.studies import service as studies
from tests.judging_helpers import Lab, build_lab, form_value, item_id, login


def _count(session: Session) -> int:
    live = select(func.count()).select_from(Judgement).where(Judgement.withdrawn_at.is_(None))
    return session.scalar(live) or 0


@pytest.fixture
def lab(db_session: Session, tmp_path: Path) -> Lab:
    lab = build_lab(
        db_session,
        tmp_path,
        prompts=4,
        steps=(4321,),
        raters=("alice", "bob", "admin"),
        run_name="secret-run-name",
    )
    studies.create_study(
        db_session,
        name="web",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[lab.raters[0].id, lab.raters[1].id],
        attention_check_rate=0,
    )
    return lab


def _page(client: TestClient) -> tuple[str, str, str, str]:
    html = client.get("/rate").text
    return html, item_id(html), form_value(html, "csrf_token"), form_value(html, "key")


def test_invite_sets_a_safe_cookie_and_bad_links_fail(client: Any, lab: Lab) -> None:
    response = client.post("/invite", data={"token": lab.tokens["alice"]}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/rate"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert lab.tokens["alice"] not in cookie
    assert client.post("/invite", data={"token": "not-a-real-token"}).status_code == 404


def test_no_cookie_redirects_to_the_invite_notice(client: Any, lab: Lab) -> None:
    response = client.get("/rate", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/need-invite"
    assert client.get("/rate").status_code == 401
    assert (
        client.post("/rate/whatever", data={"choice": "left"}, follow_redirects=False).status_code
        == 303
    )
    client.cookies.set("rlhf_session", "forged.value.sig")
    assert client.get("/rate", follow_redirects=False).status_code == 303


def test_page_is_blind(client: Any, lab: Lab, db_session: Session) -> None:
    login(client, lab.tokens["alice"])
    # Give the next item's row a distinctive id: a small one (1, 2, ...) also appears in
    # legitimate attributes (data-key="1", value="0") and in the random tokens.
    upcoming = rating.next_assignment(db_session, lab.raters[0].id)
    assert upcoming is not None
    marker = 7_654_321
    db_session.execute(update(Assignment).where(Assignment.id == upcoming.id).values(id=marker))
    db_session.expire_all()
    html, public_id, _, _ = _page(client)
    assert "secret-run-name" not in html and "4321" not in html
    assignment = db_session.scalar(select(Assignment).where(Assignment.public_id == public_id))
    assert assignment is not None and assignment.id == marker
    gen_ids = [str(i) for i in db_session.scalars(select(Generation.id))]
    # No generation, checkpoint or assignment id anywhere in the page.
    assert str(marker) not in html
    assert not any(re.search(rf"(generation|checkpoint|ckpt)[-_]?{g}\b", html) for g in gen_ids)
    assert html.count('class="response card"') == 2


def test_judging_plain_and_htmx(client: Any, lab: Lab, db_session: Session) -> None:
    login(client, lab.tokens["alice"])
    _, public_id, csrf, key = _page(client)
    plain = client.post(
        f"/rate/{public_id}",
        data={
            "choice": "tie",
            "csrf_token": csrf,
            "key": key,
            "rationale": "same",
            "client_ms": "1500",
        },
        follow_redirects=False,
    )
    assert plain.status_code == 303 and plain.headers["location"].startswith("/rate")
    judgement = db_session.scalar(select(Judgement))
    assert judgement is not None and judgement.choice == "tie" and judgement.rationale == "same"
    assert judgement.time_on_item_ms is not None and judgement.time_on_item_ms <= 1500
    _, second, csrf, key = _page(client)
    fragment = client.post(
        f"/rate/{second}",
        data={"choice": "left", "csrf_token": csrf, "key": key},
        headers={"HX-Request": "true"},
    )
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert re.search(r"<strong id=\"done-count\">2</strong>", fragment.text), fragment.text[:400]
    assert _count(db_session) == 2


def test_same_key_twice_makes_one_judgement(client: Any, lab: Lab, db_session: Session) -> None:
    login(client, lab.tokens["alice"])
    _, public_id, csrf, key = _page(client)
    data = {"choice": "left", "csrf_token": csrf, "key": key}
    first = client.post(f"/rate/{public_id}", data=data, follow_redirects=False)
    again = client.post(f"/rate/{public_id}", data=data, follow_redirects=False)
    other_key = client.post(
        f"/rate/{public_id}",
        data={**data, "key": "another", "choice": "right"},
        follow_redirects=False,
    )
    assert first.status_code == again.status_code == other_key.status_code == 303
    assert "already-recorded" in again.headers["location"]
    assert _count(db_session) == 1
    assert db_session.scalar(select(Judgement.choice)) == "left"


def test_another_raters_item_answers_like_an_unknown_one(
    client: Any, lab: Lab, db_session: Session
) -> None:
    """Status and text must not tell a rater which item ids exist (403 for someone else's item
    and 404 for an unknown one did): both are the same 404."""
    login(client, lab.tokens["alice"])
    bobs = db_session.scalar(select(Assignment).where(Assignment.rater_id == lab.raters[1].id))
    assert bobs is not None
    _, _, csrf, key = _page(client)
    verdict = {"choice": "left", "csrf_token": csrf, "key": key}
    flag = {"csrf_token": csrf, "kind": "broken", "flag_reason": "probe"}
    for suffix, data in (("", verdict), ("/skip", {"csrf_token": csrf}), ("/flag", flag)):
        theirs = client.post(f"/rate/{bobs.public_id}{suffix}", data=data)
        unknown = client.post(f"/rate/no-such-item{suffix}", data=data)
        assert theirs.status_code == unknown.status_code == 404, suffix
        assert theirs.text == unknown.text, suffix
    undo = client.post("/rate/undo", data={"csrf_token": csrf, "undo_item": bobs.public_id})
    assert undo.status_code == 404
    assert _count(db_session) == 0
    db_session.refresh(bobs)
    assert bobs.status == "pending" and bobs.skip_count == 0


def _masked(text: str) -> str:
    return re.sub(r"\d+", "N", text)


def test_guidelines_of_another_study_answer_like_an_unknown_one(
    client: Any, lab: Lab, db_session: Session
) -> None:
    other = studies.create_study(
        db_session,
        name="not alice's",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[lab.raters[1].id],
        raters_per_comparison=1,
        attention_check_rate=0,
    )
    login(client, lab.tokens["alice"])
    csrf = _page(client)[2]
    missing = other.id + 1000
    theirs, unknown = (client.get(f"/rate/guidelines/{i}") for i in (other.id, missing))
    assert theirs.status_code == unknown.status_code == 404
    # Ids are digits like any other on the page (htmx-2.0.11): compare with every number masked.
    assert _masked(theirs.text) == _masked(unknown.text)
    seen = [
        client.post(f"/rate/guidelines/{i}/seen", data={"csrf_token": csrf})
        for i in (other.id, missing)
    ]
    assert [r.status_code for r in seen] == [404, 404]
    assert _masked(seen[0].text) == _masked(seen[1].text)


def test_csrf_is_required(client: Any, lab: Lab, db_session: Session) -> None:
    login(client, lab.tokens["alice"])
    _, public_id, csrf, key = _page(client)
    for token in (None, "wrong", csrf[:-1]):
        data = {"choice": "left", "key": key, **({"csrf_token": token} if token else {})}
        assert client.post(f"/rate/{public_id}", data=data).status_code == 403
    # A token from another session (bob's) is no good either.
    other = TestClient(client.app)
    login(other, lab.tokens["bob"])
    bob_csrf = form_value(other.get("/rate").text, "csrf_token")
    assert (
        client.post(
            f"/rate/{public_id}", data={"choice": "left", "key": key, "csrf_token": bob_csrf}
        ).status_code
        == 403
    )
    assert _count(db_session) == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"choice": "best"}, "choice must be one of"),
        ({"choice": "left", "rationale": "x" * 2001}, "limited to 2000"),
        ({"choice": "left", "client_ms": "-5"}, "cannot be negative"),
        ({"choice": "left", "client_ms": "soon"}, "number of milliseconds"),
        ({"choice": "left", "key": ""}, "submission key"),
    ],
)
def test_malformed_forms_are_refused(
    client: Any, lab: Lab, db_session: Session, data: dict[str, str], message: str
) -> None:
    login(client, lab.tokens["alice"])
    _, public_id, csrf, key = _page(client)
    response = client.post(f"/rate/{public_id}", data={"csrf_token": csrf, "key": key, **data})
    assert response.status_code == 400
    assert message in response.text
    assert _count(db_session) == 0


def test_skip_returns_at_the_end_and_undo_restores(
    client: Any, lab: Lab, db_session: Session
) -> None:
    login(client, lab.tokens["alice"])
    _, first, csrf, _ = _page(client)
    assert (
        client.post(
            f"/rate/{first}/skip",
            data={"csrf_token": csrf, "reason": "unsure"},
            follow_redirects=False,
        ).status_code
        == 303
    )
    seen = []
    while True:
        html = client.get("/rate").text
        if "All done" in html:
            break
        pid = item_id(html)
        seen.append(pid)
        client.post(
            f"/rate/{pid}",
            data={"choice": "right", "csrf_token": csrf, "key": form_value(html, "key")},
        )
    assert seen[-1] == first and first not in seen[:-1]
    html = client.get("/rate").text
    assert "Undo last verdict" in html
    response = client.post(
        "/rate/undo",
        data={"csrf_token": csrf, "undo_item": form_value(html, "undo_item")},
        follow_redirects=False,
    )
    assert "undone" in response.headers["location"]
    assert item_id(client.get("/rate").text) == first
    assert _count(db_session) == len(seen) - 1
    fragment = client.post(
        f"/rate/{first}/skip", data={"csrf_token": csrf}, headers={"HX-Request": "true"}
    )
    assert (
        fragment.status_code == 200 and "<html" not in fragment.text and "Skipped" in fragment.text
    )
    undo = client.post(
        "/rate/undo",
        data={"csrf_token": csrf, "undo_item": first},
        headers={"HX-Request": "true"},
    )
    assert undo.status_code == 200 and "<html" not in undo.text


def test_undo_window_expires(client: Any, lab: Lab, db_session: Session) -> None:
    client.app.state.undo_window = timedelta(seconds=0)
    login(client, lab.tokens["alice"])
    _, public_id, csrf, key = _page(client)
    client.post(f"/rate/{public_id}", data={"choice": "left", "csrf_token": csrf, "key": key})
    response = client.post(
        "/rate/undo", data={"csrf_token": csrf, "undo_item": public_id}, follow_redirects=False
    )
    assert "nothing-to-undo" in response.headers["location"]
    assert _count(db_session) == 1


def test_admin_pages_need_admin(client: Any, lab: Lab, db_session: Session) -> None:
    study = db_session.scalar(select(Study))
    assert study is not None
    login(client, lab.tokens["alice"])
    csrf = form_value(client.get("/rate").text, "csrf_token")
    for path in (
        "/admin",
        f"/admin/studies/{study.id}",
        f"/admin/studies/{study.id}/qc",
        f"/admin/studies/{study.id}/export.csv",
        "/admin/studies/new",
    ):
        assert client.get(path).status_code == 403, path
    assert (
        client.post(
            f"/admin/studies/{study.id}/status", data={"csrf_token": csrf, "status": "closed"}
        ).status_code
        == 403
    )
    assert study.status == "running"


def test_admin_flow(client: Any, lab: Lab, db_session: Session) -> None:
    study = db_session.scalar(select(Study))
    assert study is not None
    login(client, lab.tokens["admin"])
    page = client.get(f"/admin/studies/{study.id}")
    assert page.status_code == 200 and "secret-run-name@4321" in page.text
    csrf = form_value(page.text, "csrf_token")
    assert client.get(f"/admin/studies/{study.id}/qc").status_code == 200
    assert (
        client.post(f"/admin/studies/{study.id}/status", data={"status": "closed"}).status_code
        == 403
    )
    invite = client.post("/admin/raters", data={"csrf_token": csrf, "name": "dora"})
    link = re.search(r'value="(http[^"]+/invite#[^"]+)"', invite.text)
    assert link is not None
    response = client.post(
        f"/admin/studies/{study.id}/raters",
        data={"csrf_token": csrf, "rater": str(lab.raters[2].id)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    created = client.post(
        "/admin/studies",
        data={
            "csrf_token": csrf,
            "name": "second",
            "checkpoints": str(lab.trained[0].id),
            "prompt_set": str(lab.prompt_set_id),
            "raters": [str(r.id) for r in lab.raters],
            "raters_per_comparison": "3",
            "attention_check_rate": "0",
        },
        follow_redirects=False,
    )
    assert created.status_code == 303
    second = db_session.scalar(select(Study).where(Study.name == "second"))
    assert second is not None and created.headers["location"] == f"/admin/studies/{second.id}"
    assert second.reference_checkpoint_id == lab.base.id
    refused = client.post(
        "/admin/studies",
        data={"csrf_token": csrf, "name": "third", "prompt_set": str(lab.prompt_set_id)},
    )
    assert refused.status_code == 409 and "at least one checkpoint" in refused.text
    export = client.get(f"/admin/studies/{study.id}/export.jsonl?anonymise=1")
    assert export.status_code == 200 and export.headers["content-type"].startswith(
        "application/x-ndjson"
    )
    assert client.get(f"/admin/studies/{study.id}/export.xml").status_code == 404
    assert client.get("/admin/studies/99999").status_code == 404


def test_sign_out_ends_the_session(client: Any, lab: Lab) -> None:
    login(client, lab.tokens["alice"])
    csrf = form_value(client.get("/rate").text, "csrf_token")
    response = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/need-invite"
    assert client.get("/rate", follow_redirects=False).status_code == 303
