"""Sessions, invite links, cookies, headers and hostile bytes (issue 12, "what is wrong today")."""

from __future__ import annotations

import os
import re
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from judging.data.models import Assignment, Judgement, Rater, Study
from judging.settings import PROJECT_ROOT, Settings
from judging.studies import service as studies
from judging.studies.raters import invite_rater, invite_url
from tests.judging_helpers import Lab, build_lab, login

DEV_SECRET = "dev-only-insecure-secret-key-change-me"


@pytest.fixture
def lab(db_session: Session, tmp_path: Path) -> Lab:
    lab = build_lab(db_session, tmp_path, prompts=3, steps=(7,), raters=("alice", "bob", "admin"))
    studies.create_study(
        db_session,
        name="sec",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[lab.raters[0].id, lab.raters[1].id],
        attention_check_rate=0,
    )
    return lab


def _field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no {name} in page"
    return match.group(1)


def _item(html: str) -> str:
    match = re.search(r'action="/rate/([A-Za-z0-9_-]+)"', html)
    assert match, "no item on page"
    return match.group(1)


def _signed_in(client: TestClient) -> bool:
    return client.get("/rate", follow_redirects=False).status_code == 200


# --- sessions carry a version: revoke, re-invite and sign-out end them at once ---------------


def test_reinvite_ends_existing_sessions(client: Any, lab: Lab, db_session: Session) -> None:
    login(client, lab.tokens["alice"])
    assert _signed_in(client)
    invite_rater(db_session, name="alice")
    assert not _signed_in(client)


def test_revoke_ends_sessions_and_the_link(client: Any, lab: Lab, db_session: Session) -> None:
    from judging.studies.raters import revoke_rater

    other = TestClient(client.app)
    login(client, lab.tokens["alice"])
    revoke_rater(db_session, "alice")
    assert not _signed_in(client)
    assert other.post("/invite", data={"token": lab.tokens["alice"]}).status_code in (404, 410)


def test_admin_page_revokes_a_rater(client: Any, lab: Lab, db_session: Session) -> None:
    alice = TestClient(client.app)
    login(alice, lab.tokens["alice"])
    login(client, lab.tokens["admin"])
    page = client.get("/admin").text
    csrf = _field(page, "csrf_token")
    assert f'action="/admin/raters/{lab.raters[0].id}/revoke"' in page
    done = client.post(
        f"/admin/raters/{lab.raters[0].id}/revoke",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert not _signed_in(alice)
    rater = db_session.get(Rater, lab.raters[0].id)
    assert rater is not None and not rater.active


def test_signed_out_cookie_is_dead(client: Any, lab: Lab) -> None:
    login(client, lab.tokens["alice"])
    cookie = client.cookies.get("rlhf_session")
    csrf = _field(client.get("/rate").text, "csrf_token")
    client.post("/logout", data={"csrf_token": csrf})
    client.cookies.set("rlhf_session", cookie)
    assert not _signed_in(client)


# --- invite links: one-time, expiring, token never in a URL the server sees, guessing limited ---


def test_invite_link_is_one_time(client: Any, lab: Lab) -> None:
    login(client, lab.tokens["alice"])
    again = TestClient(client.app)
    refused = again.post("/invite", data={"token": lab.tokens["alice"]}, follow_redirects=False)
    assert refused.status_code == 410 and "already been used" in refused.text


def test_invite_link_expires(client: Any, lab: Lab, db_session: Session) -> None:
    rater = db_session.get(Rater, lab.raters[0].id)
    assert rater is not None
    rater.invite_expires_at = datetime.now(UTC) - timedelta(seconds=1)
    db_session.flush()
    refused = client.post("/invite", data={"token": lab.tokens["alice"]}, follow_redirects=False)
    assert refused.status_code == 410 and "expired" in refused.text


def test_invite_token_never_in_the_request_line(client: Any, lab: Lab) -> None:
    url = invite_url("http://lab.example", lab.tokens["alice"])
    parts = urlsplit(url)
    assert lab.tokens["alice"] not in parts.path + parts.query
    assert parts.fragment == lab.tokens["alice"]
    # The page behind the link signs in only through a POST (script or pasted token).
    page = client.get(parts.path)
    assert page.status_code == 200 and 'name="token"' in page.text
    assert client.get(f"/invite/{lab.tokens['alice']}").status_code == 404
    assert not _signed_in(client)


def test_invite_guessing_is_rate_limited(client: Any, lab: Lab) -> None:
    codes = [
        client.post("/invite", data={"token": f"guess-{i}"}, follow_redirects=False).status_code
        for i in range(12)
    ]
    assert codes[0] == 404 and codes[-1] == 429


# --- cookies and headers --------------------------------------------------------------------


def test_production_cookie_is_secure_over_plain_http_and_has_hsts(
    client: Any, lab: Lab, test_settings: Settings
) -> None:
    client.app.state.settings = test_settings.model_copy(update={"environment": "production"})
    response = login(client, lab.tokens["alice"])
    cookie = response.headers["set-cookie"].lower()  # type: ignore[attr-defined]
    assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "max-age=" in response.headers["strict-transport-security"]  # type: ignore[attr-defined]


def test_local_cookie_over_http_is_not_secure_and_no_hsts(client: Any, lab: Lab) -> None:
    response = login(client, lab.tokens["alice"])
    assert "secure" not in response.headers["set-cookie"].lower()  # type: ignore[attr-defined]
    assert "strict-transport-security" not in response.headers  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "path", ["/", "/need-invite", "/invite", "/static/app.css", "/healthz", "/no-such-page"]
)
def test_security_headers_on_every_response(client: Any, lab: Lab, path: str) -> None:
    response = client.get(path)
    csp = response.headers["content-security-policy"]
    directives = dict(
        [*part.split(" ", 1), ""][:2] for part in (d.strip() for d in csp.split(";")) if part
    )
    assert directives["frame-ancestors"] == "'none'"
    assert "'unsafe-inline'" not in directives["script-src"]
    assert "'unsafe-eval'" not in directives["script-src"]
    assert directives["object-src"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


# The study report is a self-contained file for offline reading (Plotly inlined); the app serves
# it only as a download (Content-Disposition: attachment, test_research_pages), never as a page.
OFFLINE_DOCUMENTS = {"research/report.html"}


def test_templates_have_no_inline_script() -> None:
    offenders = []
    root = PROJECT_ROOT / "templates"
    for template in root.rglob("*.html"):
        if template.relative_to(root).as_posix() in OFFLINE_DOCUMENTS:
            continue
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            # A JSON data block is never executed (browsers run only JavaScript types).
            if "src=" not in tag and 'type="application/json"' not in tag:
                offenders.append(f"{template.name}: {tag}")
        offenders += [f"{template.name}: {m}" for m in re.findall(r"\son[a-z]+\s*=", text)]
        offenders += [f"{template.name}: {m}" for m in re.findall(r"hx-on[:-]\S+", text)]
        offenders += [f"{template.name}: javascript:" for _ in re.findall("javascript:", text)]
    assert offenders == []


class _SignedEarlier(TimestampSigner):
    """Signs as if `ago` seconds in the past."""

    ago = 0

    def get_timestamp(self) -> int:
        return int(time.time()) - self.ago


def test_a_session_expires_after_thirty_days_even_once_verified(client: Any, lab: Lab) -> None:
    """Verified cookies are remembered per process (app.auth._verified); the age is checked on
    every request all the same, so a cookie seen while young still dies on time."""
    from app.auth import COOKIE, MAX_AGE_S

    login(client, lab.tokens["alice"])
    secret = client.app.state.settings.secret_key.get_secret_value()
    payload = URLSafeTimedSerializer(secret, salt="rlhf-session").loads(client.cookies[COOKIE])
    old = URLSafeTimedSerializer(secret, salt="rlhf-session", signer=_SignedEarlier)
    _SignedEarlier.ago = MAX_AGE_S - 2
    client.cookies.clear()  # the login's own cookie would be sent too
    client.cookies.set(COOKIE, old.dumps(payload))
    assert _signed_in(client)  # two seconds to live, and now remembered as verified
    time.sleep(3.5)
    assert not _signed_in(client)
    _SignedEarlier.ago = MAX_AGE_S + 60
    client.cookies.clear()
    client.cookies.set(COOKIE, old.dumps(payload))
    assert not _signed_in(client)


# --- the secret key ---------------------------------------------------------------------------


def test_cookie_signed_with_the_public_dev_key_is_not_admin(client: Any, lab: Lab) -> None:
    admin = lab.raters[2]
    forged = URLSafeTimedSerializer(DEV_SECRET, salt="rlhf-session").dumps(
        {"r": admin.id, "c": "x", "v": 0}
    )
    client.cookies.set("rlhf_session", forged)
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_missing_secret_is_generated_once_and_private(tmp_path: Path) -> None:
    first = Settings(RLHF_DATA_DIR=tmp_path, RLHF_SECRET_KEY="")  # type: ignore[call-arg]
    key = first.secret_key.get_secret_value()
    assert key != DEV_SECRET and len(key) >= 32
    path = tmp_path / "secret_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = Settings(RLHF_DATA_DIR=tmp_path, RLHF_SECRET_KEY="")  # type: ignore[call-arg]
    assert again.secret_key.get_secret_value() == key


def test_public_dev_key_is_refused_everywhere(tmp_path: Path) -> None:
    from judging.errors import ConfigError
    from judging.settings import load_settings

    with pytest.raises(ConfigError, match="public development key"):
        load_settings(RLHF_DATA_DIR=tmp_path, RLHF_SECRET_KEY=DEV_SECRET)


# --- hostile bytes ----------------------------------------------------------------------------


def _judged(db_session: Session) -> int:
    return db_session.scalar(select(func.count()).select_from(Judgement)) or 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("rationale", "fine\x00text"), ("key", "k\x00"), ("choice", "left\x00")],
)
def test_nul_in_a_verdict_is_a_clear_400(
    client: Any, lab: Lab, db_session: Session, field: str, value: str
) -> None:
    login(client, lab.tokens["alice"])
    html = client.get("/rate").text
    data = {"choice": "left", "csrf_token": _field(html, "csrf_token"), "key": _field(html, "key")}
    response = client.post(f"/rate/{_item(html)}", data={**data, field: value})
    assert response.status_code == 400 and "NUL" in response.text
    assert _judged(db_session) == 0


def test_nul_in_skip_reason_and_public_id(client: Any, lab: Lab, db_session: Session) -> None:
    login(client, lab.tokens["alice"])
    html = client.get("/rate").text
    csrf = _field(html, "csrf_token")
    skip = client.post(f"/rate/{_item(html)}/skip", data={"csrf_token": csrf, "reason": "a\x00"})
    assert skip.status_code == 400 and "NUL" in skip.text
    bad_id = client.post("/rate/abc%00def", data={"choice": "left", "csrf_token": csrf, "key": "k"})
    assert bad_id.status_code == 400 and "NUL" in bad_id.text
    assert client.get("/rate?flash=%00").status_code == 400
    skipped = select(Assignment.skip_reason).where(Assignment.skip_reason.is_not(None))
    assert db_session.scalar(skipped) is None


def test_non_utf8_rationale_is_refused_not_garbled(
    client: Any, lab: Lab, db_session: Session
) -> None:
    login(client, lab.tokens["alice"])
    html = client.get("/rate").text
    body = (
        f"choice=left&csrf_token={_field(html, 'csrf_token')}&key={_field(html, 'key')}"
        "&rationale=caf%E9"
    )
    response = client.post(
        f"/rate/{_item(html)}",
        content=body.encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400 and "UTF-8" in response.text
    assert _judged(db_session) == 0


def test_healthz_never_echoes_the_database_error(tmp_path: Path) -> None:
    from app.main import create_app

    settings = Settings(  # type: ignore[call-arg]
        DATABASE_URL="postgresql+psycopg://nobody:hunter2@127.0.0.1:1/secretdb",
        RLHF_DATA_DIR=tmp_path,
        RLHF_ENV="test",
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unavailable"}


def _multipart(fields: dict[str, str | bytes]) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body written byte for byte (values may be any bytes)."""
    boundary = "lab-boundary-7f3a"
    body = b""
    for name, value in fields.items():
        raw = value.encode() if isinstance(value, str) else value
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        body += raw + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


BAD_UTF8 = b"\xff\xfe\x80bad"


@pytest.mark.parametrize("encoding", ["multipart", "urlencoded"])
def test_invalid_utf8_is_refused_in_every_form_encoding(
    client: Any, lab: Lab, db_session: Session, encoding: str
) -> None:
    """Starlette's multipart parser decodes invalid UTF-8 as Latin-1 ('ÿþ\\x80bad'), so a check
    for U+FFFD in the parsed values never fires: the raw bytes are what must be checked."""
    from urllib.parse import quote_from_bytes

    def post(url: str, fields: dict[str, str | bytes]) -> Any:
        if encoding == "multipart":
            body, headers = _multipart(fields)
        else:
            body = "&".join(
                f"{k}={quote_from_bytes(v if isinstance(v, bytes) else v.encode())}"
                for k, v in fields.items()
            ).encode()
            headers = {"content-type": "application/x-www-form-urlencoded"}
        return client.post(url, content=body, headers=headers, follow_redirects=False)

    login(client, lab.tokens["alice"])
    html = client.get("/rate").text
    csrf, key, item = _field(html, "csrf_token"), _field(html, "key"), _item(html)
    verdict = post(
        f"/rate/{item}", {"csrf_token": csrf, "key": key, "choice": "left", "rationale": BAD_UTF8}
    )
    assert verdict.status_code == 400 and "UTF-8" in verdict.text, verdict.text[:200]
    skip = post(f"/rate/{item}/skip", {"csrf_token": csrf, "reason": BAD_UTF8})
    assert skip.status_code == 400 and "UTF-8" in skip.text, skip.text[:200]
    assert _judged(db_session) == 0
    assert db_session.scalar(select(Assignment.id).where(Assignment.skip_count > 0)) is None

    login(client, lab.tokens["admin"])
    csrf = _field(client.get("/admin").text, "csrf_token")
    created = post("/admin/raters", {"csrf_token": csrf, "name": b"mb-caf\xe9\xff"})
    assert created.status_code == 400 and "UTF-8" in created.text, created.text[:200]
    assert db_session.scalar(select(Rater.id).where(Rater.name.like("mb-caf%"))) is None
    # Valid UTF-8 in a multipart form still goes through (U+FFFD included: it is a character).
    fine = post(f"/rate/{item}", {"csrf_token": "x", "choice": "left", "rationale": "café \ufffd"})
    assert fine.status_code == 403  # refused for the (wrong) CSRF token, not for its text


# --- issue 28: invite lockout, proxies, caching -----------------------------------------------


def _guess_until_blocked(client: Any) -> Any:
    for i in range(12):
        response = client.post("/invite", data={"token": f"guess-{i}"}, follow_redirects=False)
    return response


def test_guessing_blocks_guesses_but_never_a_real_invite(
    client: Any, lab: Lab, db_session: Session
) -> None:
    """One guesser behind a shared address (NAT, a proxy) must not lock out the invitees there:
    a link the server issued carries a tag only the server can make, and is always checked."""
    login(client, lab.tokens["admin"])
    csrf = _field(client.get("/admin").text, "csrf_token")
    page = client.post("/admin/raters", data={"csrf_token": csrf, "name": "dora"}).text
    link = re.search(r'value="(http[^"]+/invite#[^"]+)"', page)
    assert link is not None
    dora_token = link.group(1).split("#", 1)[1]

    guesser = TestClient(client.app)
    blocked = _guess_until_blocked(guesser)
    assert blocked.status_code == 429
    retry_after = int(blocked.headers["retry-after"])
    assert 0 < retry_after <= 15 * 60
    # Still blocked for guesses, including ones shaped like a real link with a forged tag.
    forged = dora_token[: -len(dora_token.rsplit(".", 1)[1])] + "A" * 22
    for token in ("another-guess", forged):
        again = guesser.post("/invite", data={"token": token}, follow_redirects=False)
        assert again.status_code == 429 and "retry-after" in again.headers
    # The invitee on the same address gets in with their real link.
    dora = TestClient(client.app)
    signed_in = dora.post("/invite", data={"token": dora_token}, follow_redirects=False)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/rate"
    # A real link used twice says so (410), blocked or not; it is no guess.
    used = guesser.post("/invite", data={"token": dora_token}, follow_redirects=False)
    assert used.status_code == 410


def test_cli_invites_carry_the_servers_tag(
    client: Any, lab: Lab, db_session: Session, test_settings: Settings
) -> None:
    """`rlhf raters invite` signs with the settings' key, as the app checks it."""
    key = test_settings.secret_key.get_secret_value()
    _rater, token = invite_rater(db_session, name="erin", signing_key=key)
    assert _guess_until_blocked(client).status_code == 429
    assert client.post("/invite", data={"token": token}, follow_redirects=False).status_code == 303


CACHED_OK = ("/static/",)


def test_rater_and_admin_pages_are_not_stored_by_browsers(
    client: Any, lab: Lab, db_session: Session
) -> None:
    """Model outputs and rater data must not stay in a shared browser's cache: every response
    but the static assets says no-store, errors and htmx fragments included."""
    study = db_session.scalar(select(Study))
    assert study is not None
    login(client, lab.tokens["alice"])
    html = client.get("/rate").text
    item = _item(html)
    checked = {
        "/rate": client.get("/rate"),
        "/rate (htmx)": client.get("/rate", headers={"HX-Request": "true"}),
        "/rate/guidelines": client.get(f"/rate/guidelines/{study.id}"),
        "/admin (refused)": client.get("/admin"),
        "verdict (htmx)": client.post(
            f"/rate/{item}",
            data={
                "csrf_token": _field(html, "csrf_token"),
                "key": _field(html, "key"),
                "choice": "left",
            },
            headers={"HX-Request": "true"},
        ),
    }
    login(client, lab.tokens["admin"])
    for path in (
        "/admin",
        f"/admin/studies/{study.id}",
        f"/admin/studies/{study.id}/qc",
        f"/admin/studies/{study.id}/export.csv",
        "/",
        "/no-such-page",
    ):
        checked[path] = client.get(path)
    for what, response in checked.items():
        assert response.headers.get("cache-control") == "no-store", (what, response.status_code)
    assert "no-store" not in client.get("/static/app.css").headers.get("cache-control", "")
