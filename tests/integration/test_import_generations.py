"""`rlhf import generations`: external responses on a checkpoint; a bad line writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from judging.data import registry
from judging.data.models import Evaluation, Generation
from judging.data.prompts import PromptRecord, store_prompt_set
from judging.errors import ConflictError, InputFileError
from judging.evaluation.config import parse_eval_config
from judging.evaluation.imports import import_generations

PROMPTS = ["How do I boil an egg?", "What is 2 + 2?", "Name a colour."]


def _lab(session: Session, tmp_path: Path) -> tuple[int, int, str]:
    run = registry.start_run(
        session, name=f"ext-{tmp_path.name}", algorithm="external", base_model="api", config={}
    )
    checkpoint = registry.register_checkpoint(session, run_id=run.id, step=1, path=tmp_path)
    records = [PromptRecord(f"q{i}", text) for i, text in enumerate(PROMPTS)]
    prompt_set = store_prompt_set(
        session, name=f"ho-{tmp_path.name}", split="heldout", records=records, source=None
    )
    return checkpoint.id, prompt_set.id, prompt_set.name


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


GOOD = [
    {"prompt_id": "q0", "response": "Boil it for 8 minutes.", "reward": 1.5},
    {
        "prompt": "what is 2 + 2?",
        "response": "Great question! It is 4.",
        "reward": -0.5,
        "finish_reason": "length",
    },
    {"prompt_id": "q2", "response": "Blue."},
]


def test_good_file_attaches_rows_and_summarises(db_session: Session, tmp_path: Path) -> None:
    checkpoint_id, set_id, _ = _lab(db_session, tmp_path)
    config = parse_eval_config({})
    evaluation = import_generations(
        db_session,
        path=_write(tmp_path / "g.jsonl", GOOD),
        checkpoint_id=checkpoint_id,
        prompt_set_id=set_id,
        config=config,
    )
    rows = list(
        db_session.scalars(
            select(Generation)
            .where(Generation.checkpoint_id == checkpoint_id)
            .order_by(Generation.prompt_id)
        )
    )
    assert [r.text for r in rows] == [g["response"] for g in GOOD]
    assert [r.reward_score for r in rows] == [1.5, -0.5, None]
    assert {r.backend for r in rows} == {"import"} and rows[1].finish_reason == "length"
    assert rows[0].kl_k1 is None and rows[1].diagnostics["sycophancy"] == 1
    summary = evaluation.summary or {}
    assert evaluation.status == "done" and summary["coverage"] == {"rows": 3, "prompts": 3}
    assert summary["reward"]["mean"] == pytest.approx(0.5) and summary["reward"]["n"] == 2
    assert summary["sycophancy_rate"] == pytest.approx(1 / 3) and summary["kl_k1"] is None
    assert "sycophancy_rate>0.05" in (evaluation.flags or [])
    with pytest.raises(ConflictError, match="already has a response"):
        import_generations(
            db_session,
            path=tmp_path / "g.jsonl",
            checkpoint_id=checkpoint_id,
            prompt_set_id=set_id,
            config=config,
        )


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "invalid JSON"),
        ({"prompt_id": "q9", "response": "x"}, "not in the prompt set"),
        ({"prompt_id": "q2"}, "'response' must be a string"),
        (
            {"prompt_id": "q2", "response": "x", "reward": "high"},
            "'reward' must be a finite number",
        ),
        ({"prompt_id": "q2", "response": "x", "finish_reason": "eos"}, "finish_reason"),
        ({"prompt_id": "q0", "response": "again"}, "second response"),
        ({"response": "no prompt"}, "needs 'prompt_id' or 'prompt'"),
    ],
)
def test_bad_line_names_its_number_and_writes_nothing(
    db_session: Session, tmp_path: Path, bad: Any, message: str
) -> None:
    checkpoint_id, set_id, _ = _lab(db_session, tmp_path)
    path = _write(tmp_path / "g.jsonl", [GOOD[0], GOOD[1], bad])
    with pytest.raises(InputFileError, match=f"g.jsonl:3: .*{message}"):
        import_generations(
            db_session,
            path=path,
            checkpoint_id=checkpoint_id,
            prompt_set_id=set_id,
            config=parse_eval_config({}),
        )
    assert db_session.scalar(select(func.count()).select_from(Generation)) == 0
    assert db_session.scalar(select(func.count()).select_from(Evaluation)) == 0


def test_cli_imports_and_reports_bad_lines_in_one_line(
    committed_factory: Any, pg_url: str, tmp_path: Path
) -> None:
    with committed_factory() as session:
        checkpoint_id, _, set_name = _lab(session, tmp_path)
        session.commit()
    env = {**os.environ, "DATABASE_URL": pg_url, "RLHF_DATA_DIR": str(tmp_path)}
    command = [
        sys.executable,
        "-m",
        "cli.main",
        "import",
        "generations",
        "--checkpoint",
        str(checkpoint_id),
        "--prompt-set",
        set_name,
    ]
    bad = _write(tmp_path / "bad.jsonl", [GOOD[0], {"prompt_id": "q1"}])
    failed = subprocess.run(
        [*command, str(bad)], env=env, capture_output=True, text=True, check=False
    )
    assert failed.returncode == 1
    assert (
        "bad.jsonl:2: 'response' must be a string" in failed.stderr
        and "Traceback" not in failed.stderr
    )
    good = _write(tmp_path / "good.jsonl", GOOD)
    done = subprocess.run(
        [*command, str(good)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    with committed_factory() as session:
        assert (
            session.scalar(select(func.count()).where(Generation.checkpoint_id == checkpoint_id))
            == 3
        )
