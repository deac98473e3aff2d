"""Health endpoint and the index, through HTTP on the real database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from judging.data import registry

pytestmark = pytest.mark.integration


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
    page = client.get("/").text
    assert "0.432" in page and "n=40" in page and "61.2" in page
    assert "truncation_rate&gt;0.2" in page
