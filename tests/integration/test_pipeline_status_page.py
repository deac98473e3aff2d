"""The index page shows the demo pipeline's status line (and nothing when it never ran)."""

from __future__ import annotations

from judging.pipeline_status import PipelineStatus, StageState, write_status
from judging.settings import Settings
from judging.studies.raters import invite_rater
from tests.judging_helpers import login


def test_index_shows_the_pipeline_status_line(client, db_session, test_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    _admin, token = invite_rater(db_session, name="root", role="admin")  # the index is admin-only
    db_session.flush()
    login(client, token)
    page = client.get("/").text
    assert "Training runs and checkpoints" in page and 'id="pipeline-status"' not in page
    status = PipelineStatus(
        stages=[
            StageState("reward_model", "Reward model", state="done"),
            StageState(
                "ppo:demo-ppo-kl001", "PPO demo-ppo-kl001", state="running", detail="<b>x</b>"
            ),
        ],
        state="running",
    )
    write_status(test_settings.data_dir, status)
    page = client.get("/").text
    assert "Demo pipeline: running — stage 2/2, PPO demo-ppo-kl001: &lt;b&gt;x&lt;/b&gt;" in page
    fragment = client.get("/", headers={"HX-Request": "true"}).text
    assert 'id="pipeline-status"' in fragment
