"""Health endpoint and the index, through HTTP on the real database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from judging.data import registry
from judging.studies.raters import invite_rater
from tests.judging_helpers import login


def _sign_in(client: TestClient, session: Session, name: str, role: str) -> None:
    _rater, token = invite_rater(session, name=name, role=role)
    session.flush()
    login(client, token)


def test_health_reports_database(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_index_lists_runs_full_page_and_htmx_block(
    client, db_session: Session, tmp_path: Path
) -> None:
    run = registry.start_run(
        db_session, name="ppo-index", algorithm="ppo", base_model="b", config={}
    )
    registry.ensure_base_checkpoint(db_session, run)
    (tmp_path / "c").mkdir()
    registry.register_checkpoint(
        db_session, run_id=run.id, step=8, path=tmp_path / "c", metrics={"objective/scores": 0.75}
    )
    _sign_in(client, db_session, "root", "admin")
    full = client.get("/")
    assert full.status_code == 200
    assert "<html" in full.text and "ppo-index" in full.text and "0.750" in full.text
    fragment = client.get("/", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and "ppo-index" in fragment.text


def test_static_vendored_htmx_served(client) -> None:
    response = client.get("/static/vendor/htmx-2.0.11.min.js")
    assert response.status_code == 200 and "htmx" in response.text[:2000]


def test_index_shows_heldout_evaluation(client, db_session: Session, tmp_path: Path) -> None:
    from judging.data.models import Evaluation, PromptSet

    run = registry.start_run(
        db_session, name="ppo-eval", algorithm="ppo", base_model="b", config={}
    )
    base = registry.ensure_base_checkpoint(db_session, run)
    prompt_set = PromptSet(name="held-idx", split="heldout")
    db_session.add(prompt_set)
    db_session.flush()
    summary = {"n": 40, "reward": {"mean": 0.4321}, "kl_k3": {"mean": 0.0}, "length_tokens": 61.25}
    db_session.add(
        Evaluation(
            checkpoint_id=base.id,
            prompt_set_id=prompt_set.id,
            status="done",
            summary=summary,
            flags=["truncation_rate>0.2"],
        )
    )
    db_session.flush()
    _sign_in(client, db_session, "root", "admin")
    page = client.get("/").text
    assert "0.432" in page and "n=40" in page and "61.2" in page
    assert "truncation_rate&gt;0.2" in page


def _a_run(session: Session, tmp_path: Path) -> None:
    run = registry.start_run(
        session, name="ppo-private-run", algorithm="ppo", base_model="b", config={}
    )
    registry.ensure_base_checkpoint(session, run)
    (tmp_path / "c").mkdir()
    registry.register_checkpoint(
        session, run_id=run.id, step=8, path=tmp_path / "c", metrics={"objective/scores": 0.75}
    )


@pytest.mark.parametrize("path", ["/", "/api/docs", "/openapi.json"])
def test_anonymous_sees_no_runs_and_no_api_docs(
    client: TestClient, db_session: Session, tmp_path: Path, path: str
) -> None:
    _a_run(db_session, tmp_path)
    response = client.get(path, follow_redirects=False)
    assert response.status_code in (303, 401), response.status_code
    followed = client.get(path)
    assert "ppo-private-run" not in followed.text and "/rate/{public_id}" not in followed.text
    assert "invite link" in followed.text


@pytest.mark.parametrize("path", ["/", "/api/docs", "/openapi.json"])
def test_rater_is_sent_to_their_queue_not_the_runs(
    client: TestClient, db_session: Session, tmp_path: Path, path: str
) -> None:
    _a_run(db_session, tmp_path)
    _sign_in(client, db_session, "carol", "rater")
    response = client.get(path, follow_redirects=False)
    assert response.status_code in (303, 403)
    if response.status_code == 303:
        assert response.headers["location"] == "/rate"
    text = client.get(path).text
    assert "ppo-private-run" not in text and "0.750" not in text
    assert "/rate/{public_id}" not in text and "swagger" not in text.lower()


def test_admin_reads_the_api_docs(client: TestClient, db_session: Session) -> None:
    _sign_in(client, db_session, "root", "admin")
    schema = client.get("/openapi.json")
    assert schema.status_code == 200 and "/rate/{public_id}" in schema.json()["paths"]
    assert "swagger" in client.get("/api/docs").text.lower()
    assert client.get("/api/redoc").status_code == 404  # dropped: Swagger UI is vendored


def test_api_docs_work_offline_under_the_strict_csp(
    client: TestClient, db_session: Session
) -> None:
    # Swagger UI from the vendored bundle: no external host anywhere in the page, no inline
    # script, and the same CSP as every other page.
    from app.security import CSP

    _sign_in(client, db_session, "root", "admin")
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CSP
    assert re.findall(r"https?://", response.text) == []
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", response.text, re.S)
    assert scripts and all('src="/static/' in attrs and not body.strip() for attrs, body in scripts)
    for url in re.findall(r'(?:src|href)="(/static/[^"]+)"', response.text):
        assert client.get(url).status_code == 200, url
