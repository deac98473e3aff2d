"""Invite links the demo hands out: files readable by the owner only, and the admin's link."""

from __future__ import annotations

from pathlib import Path

from cli.common import db_session
from judging.errors import NotFoundError
from judging.studies.raters import get_rater_by_name, invite_outstanding, invite_rater, invite_url

DEMO_ADMIN = "demo-admin"


def write_private(path: Path, text: str) -> None:
    """Write invite links atomically, readable by the owner only (mode 600) from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


def admin_link(data_dir: Path, base_url: str) -> str | None:
    """The demo admin's sign-in link (the dashboard is for admins only), or None once it is used.

    Issued on the first `demo up` and kept in `<data dir>/demo/admin-invite.txt` (mode 600) while
    it is unused, so a rerun prints the same link; a fresh one would end a browser's session.
    """
    kept = data_dir / "demo" / "admin-invite.txt"
    with db_session() as session:
        try:
            admin = get_rater_by_name(session, DEMO_ADMIN)
        except NotFoundError:
            admin = None
        if admin is not None and admin.active and admin.role == "admin":
            if admin.invite_expires_at is None:
                return None  # used: that browser is signed in
            if invite_outstanding(admin) and kept.is_file():
                return kept.read_text(encoding="utf-8").strip()
        _admin, token = invite_rater(session, name=DEMO_ADMIN, role="admin")
        url = invite_url(base_url, token)
        write_private(kept, url + "\n")
    return url
