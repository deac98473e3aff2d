"""`make demo` prints a one-time admin link at once: the dashboard is for admins only, and before
this a fresh demo served only the invite notice to whoever opened it."""

from __future__ import annotations

import stat
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from cli.demo.invites import admin_link
from judging.settings import get_settings


def test_the_demo_admin_link_opens_the_dashboard_once(cli_db: Session, tmp_path: Path) -> None:
    from app.main import create_app

    first = admin_link(tmp_path, "http://testserver")
    assert first is not None and first.startswith("http://testserver/invite#")
    kept = tmp_path / "demo" / "admin-invite.txt"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert admin_link(tmp_path, "http://testserver") == first  # a rerun: same link, while unused

    with TestClient(create_app(get_settings())) as client:
        anonymous = client.get("/", follow_redirects=False)
        assert anonymous.status_code == 303 and "need-invite" in anonymous.headers["location"]
        signed_in = client.post(
            "/invite", data={"token": first.split("#", 1)[1]}, follow_redirects=False
        )
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/admin"
        dashboard = client.get("/", follow_redirects=False)
        assert dashboard.status_code == 200
        # Used: a rerun must not issue a new link, which would end this browser's session.
        assert admin_link(tmp_path, "http://testserver") is None
        assert client.get("/", follow_redirects=False).status_code == 200
