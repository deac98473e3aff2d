"""The index lists runs and checkpoints for admins, in a real browser; raters never see it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from judging.data import registry
from judging.studies.raters import invite_rater
from tests.e2e.conftest import sign_in


def test_index_lists_runs_and_checkpoints(
    live_server: str, committed_session: Session, page, tmp_path
) -> None:
    ckpt_dir = tmp_path / "checkpoint-10"
    ckpt_dir.mkdir()
    (ckpt_dir / "adapter.bin").write_bytes(b"weights")
    run = registry.start_run(
        committed_session,
        name="ppo-<b>bold</b>-run",
        algorithm="ppo",
        base_model="models/SmolLM2",
        config={"lr": 1e-5},
    )
    registry.ensure_base_checkpoint(committed_session, run)
    registry.register_checkpoint(
        committed_session,
        run_id=run.id,
        step=10,
        path=ckpt_dir,
        metrics={"objective/scores": 1.25, "objective/kl": 0.5},
    )
    _rater, admin_token = invite_rater(committed_session, name="root", role="admin")
    _rater, rater_token = invite_rater(committed_session, name="carol", role="rater")
    committed_session.commit()

    # A rater who types the address lands on their queue, with no run data on the way.
    sign_in(page, live_server, rater_token)
    page.goto(live_server + "/")
    assert page.url == live_server + "/rate"
    assert "ppo-" not in page.content()
    page.goto(live_server + "/api/docs")
    assert page.url == live_server + "/rate"

    sign_in(page, live_server, admin_token)
    page.goto(live_server + "/")
    heading = page.locator(f"#run-{run.id} h2")
    # Hostile text in a run name is shown as text, not interpreted as markup.
    assert "ppo-<b>bold</b>-run" in heading.inner_text()
    assert page.locator(f"#run-{run.id} b").count() == 0
    rows = page.locator(f"#run-{run.id} tr.checkpoint")
    assert rows.count() == 2
    assert rows.nth(1).get_attribute("data-step") == "10"
    assert "1.250" in rows.nth(1).inner_text()


def test_index_empty_state(live_server: str, committed_session: Session, page) -> None:
    _rater, token = invite_rater(committed_session, name="root", role="admin")
    committed_session.commit()
    sign_in(page, live_server, token)
    page.goto(live_server + "/")
    assert "No training runs yet" in page.content()


def test_index_needs_a_sign_in(live_server: str, page) -> None:
    page.goto(live_server + "/")
    assert page.url == live_server + "/need-invite"
    assert "invite link" in page.content()


def test_api_docs_render_offline_with_no_console_errors(
    live_server: str, committed_session: Session, page
) -> None:
    _admin, token = invite_rater(committed_session, name="root", role="admin")
    committed_session.commit()
    errors: list[str] = []
    hosts: set[str] = set()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: hosts.add(r.url.split("/")[2]))
    sign_in(page, live_server, token)
    page.goto(live_server + "/api/docs")
    page.wait_for_selector(".opblock", timeout=15000)  # the operations, rendered from the schema
    assert page.locator(".opblock").count() > 5
    assert hosts == {live_server.split("/")[2]}
    assert errors == []
