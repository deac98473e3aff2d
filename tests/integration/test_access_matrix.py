"""Every route x {anonymous, rater, another rater, admin, revoked rater}: who may do what.

The routes come from the app itself, so a new route is checked the day it is added: it is an
admin route unless the policy table below says otherwise (deny by default). Path parameters are
filled with real ids (unknown names get "1"); POSTs carry the caller's own CSRF token, so a refusal
is the access rule at work, not a missing token.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.routing import Route

from judging.data.models import Assignment, Study
from judging.settings import Settings
from judging.studies import service as studies
from judging.studies.raters import revoke_rater
from tests.judging_helpers import Lab, build_lab, login

RUN_NAME = "secret-run-name"

# No sign-in needed. Everything not listed in PUBLIC or RATER is admin-only.
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/favicon.ico"),
    ("GET", "/need-invite"),
    ("GET", "/invite"),
    ("POST", "/invite"),
}
# Admin-only pages that show run names, rewards and lengths (the index, the API schema and its
# docs): a rater is sent to their queue (303 to /rate) instead of a 403 page.
ADMIN_REDIRECTS_RATER = {
    ("GET", "/"),
    ("GET", "/openapi.json"),
    ("GET", "/api/docs"),
}
# Any signed-in rater (admins judge too), on their own queue only.
RATER = {
    ("GET", "/rate"),
    ("POST", "/rate/undo"),
    ("POST", "/logout"),
    ("POST", "/rate/{public_id}"),
    ("POST", "/rate/{public_id}/skip"),
    ("POST", "/rate/{public_id}/flag"),
    ("GET", "/rate/guidelines/{study_id}"),
    ("POST", "/rate/guidelines/{study_id}/seen"),
}
# Rater routes that act on one item: only the rater it is assigned to may touch it.
OWNED = {
    ("POST", "/rate/{public_id}"),
    ("POST", "/rate/{public_id}/skip"),
    ("POST", "/rate/{public_id}/flag"),
}
# Rater routes about one study: only its raters (alice and bob, not the admin) may see them.
MEMBERS = {("GET", "/rate/guidelines/{study_id}"), ("POST", "/rate/guidelines/{study_id}/seen")}


def _routes() -> list[tuple[str, str]]:
    from app.main import create_app

    app = create_app(Settings(DATABASE_URL="sqlite://", RLHF_SECRET_KEY="x" * 40))  # type: ignore[call-arg]
    found = set()
    for route in app.routes:
        if isinstance(route, Route):
            found |= {(m, route.path) for m in (route.methods or ()) if m != "HEAD"}
    return sorted(found)


ROUTES = _routes()


@pytest.fixture
def lab(db_session: Session, tmp_path: Path) -> Lab:
    lab = build_lab(
        db_session,
        tmp_path,
        prompts=3,
        steps=(4321,),
        raters=("alice", "bob", "admin", "carol"),
        run_name=RUN_NAME,
    )
    studies.create_study(
        db_session,
        name="matrix",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[lab.raters[0].id, lab.raters[1].id, lab.raters[3].id],
        attention_check_rate=0,
    )
    return lab


def _signed_in(app: Any, token: str | None) -> tuple[TestClient, str]:
    client = TestClient(app)
    if token is None:
        return client, ""
    login(client, token)
    page = client.get("/rate").text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    return client, match.group(1) if match else ""


def _url(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values.get(m.group(1), "1"), path)


def test_every_route_is_classified() -> None:
    assert ROUTES, "no routes found"
    assert PUBLIC | RATER  # the tables are in use
    stale = (PUBLIC | RATER | ADMIN_REDIRECTS_RATER) - set(ROUTES)
    assert not stale, f"policy table names routes that no longer exist: {stale}"


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_access(client: Any, lab: Lab, db_session: Session, method: str, path: str) -> None:
    alice, bob = lab.raters[:2]
    study = db_session.scalar(select(Study))
    assert study is not None
    alices_item = db_session.scalar(
        select(Assignment.public_id).where(Assignment.rater_id == alice.id)
    )
    values = {
        "study_id": str(study.id),
        "public_id": str(alices_item),
        "fmt": "csv",
        "rater_id": str(bob.id),
        "run_id": str(lab.trained[0].run_id),
        "checkpoint_id": str(lab.trained[0].id),
        "token": "x",
    }
    url = _url(path, values)
    revoked, revoked_csrf = _signed_in(client.app, lab.tokens["carol"])
    revoke_rater(db_session, "carol")
    callers = {
        "anonymous": _signed_in(client.app, None),
        "revoked": (revoked, revoked_csrf),
        "rater": _signed_in(client.app, lab.tokens["alice"]),
        "other rater": _signed_in(client.app, lab.tokens["bob"]),
        "admin": _signed_in(client.app, lab.tokens["admin"]),  # last: its POSTs may change state
    }
    policy = (
        "public" if (method, path) in PUBLIC else "rater" if (method, path) in RATER else "admin"
    )
    for who, (caller, csrf) in callers.items():
        data = {"csrf_token": csrf, "choice": "left", "key": f"matrix-{who}", "token": "nope"}
        data |= {"kind": "broken", "flag_reason": "matrix"}  # a valid "cannot judge" form
        response = (
            caller.get(url, follow_redirects=False)
            if method == "GET"
            else caller.request(method, url, data=data, follow_redirects=False)
        )
        code, where = response.status_code, response.headers.get("location", "")
        shown = f"{method} {url} as {who}: {code} {where} {response.text[:160]!r}"
        assert code < 500, shown
        # Refused for want of a session: sent to the invite notice, no cookie set (a successful
        # sign-out also lands there, but clears its cookie).
        ends_cookie = "rlhf_session=" in response.headers.get("set-cookie", "")
        signed_out = code == 303 and where.endswith("/need-invite") and not ends_cookie
        if policy == "public":
            continue
        if who in ("anonymous", "revoked"):
            assert signed_out, shown
            continue
        assert not signed_out, shown
        if policy == "admin" and who != "admin" and (method, path) in ADMIN_REDIRECTS_RATER:
            assert code == 303 and where.endswith("/rate"), shown
        elif policy == "admin" and who != "admin":
            assert code == 403, shown
        elif policy == "rater" and (method, path) in OWNED and who != "rater":
            # bob, and the admin, may not touch alice's item, nor learn that it exists
            assert code == 404 and "no such item" in response.text, shown
        elif policy == "rater" and (method, path) in MEMBERS and who == "admin":
            assert code == 404, shown  # the admin is no rater in this study
        else:
            assert code != 403, shown
        # Nothing a signed-in caller gets back may stay in a shared browser's cache.
        assert response.headers.get("cache-control") == "no-store", shown
        if who != "admin":
            assert RUN_NAME not in response.text, f"{shown}: leaks the run name"
            assert "4321" not in response.text, f"{shown}: leaks the checkpoint step"
