"""`rlhf prompts import` end to end: real subprocesses that commit into the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from judging.data.models import Prompt, PromptSet

ROOT = Path(__file__).resolve().parents[2]
HELDOUT = ROOT / "data" / "prompts" / "heldout.jsonl"


def rlhf(pg_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real CLI entry point (with its one-line error wrapper) against the test DB."""
    env = {**os.environ, "DATABASE_URL": pg_url, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def stored(engine: Engine, name: str) -> tuple[str | None, int]:
    """The split of the committed prompt set of that name (None if absent) and its size."""
    with Session(engine) as session:
        split = session.scalar(select(PromptSet.split).where(PromptSet.name == name))
        count = session.scalar(
            select(func.count(Prompt.id)).join(PromptSet).where(PromptSet.name == name)
        )
    return split, int(count or 0)


@pytest.fixture
def set_name(pg_engine: Engine) -> Iterator[str]:
    """A unique set name; whatever the CLI committed under it is deleted afterwards."""
    name = f"cli-test-{uuid.uuid4().hex[:10]}"
    yield name
    with pg_engine.begin() as conn:
        ids = select(PromptSet.id).where(PromptSet.name == name).scalar_subquery()
        conn.execute(delete(Prompt).where(Prompt.prompt_set_id.in_(ids)))
        conn.execute(delete(PromptSet).where(PromptSet.name == name))


def test_import_heldout_then_refuse_same_name(
    pg_url: str, pg_engine: Engine, set_name: str
) -> None:
    result = rlhf(
        pg_url, "prompts", "import", str(HELDOUT), "--set", set_name, "--split", "heldout"
    )
    assert result.returncode == 0, result.stderr
    assert stored(pg_engine, set_name) == ("heldout", 200)
    with pg_engine.connect() as conn:
        categories = conn.scalars(
            select(Prompt.category).join(PromptSet).where(PromptSet.name == set_name).distinct()
        ).all()
    assert len(categories) == 7

    again = rlhf(pg_url, "prompts", "import", str(HELDOUT), "--set", set_name, "--split", "train")
    assert_one_line_error(again, "already exists", set_name)
    assert stored(pg_engine, set_name) == ("heldout", 200)


def _good_rows() -> list[str]:
    return [json.dumps({"id": f"r{i}", "prompt": f"Prompt number {i}?"}) for i in range(1, 6)]


BAD_LINE_3 = {
    "invalid JSON": '{"id": "r3", "prompt": "unterminated',
    "missing prompt": json.dumps({"id": "r3", "question": "Where is the prompt field?"}),
    "empty prompt": json.dumps({"id": "r3", "prompt": "   "}),
    "duplicate prompt": json.dumps({"id": "r3", "prompt": "  prompt NUMBER 1? "}),
}


@pytest.mark.parametrize("problem", list(BAD_LINE_3))
def test_bad_row_on_line_3_imports_nothing(
    problem: str, pg_url: str, pg_engine: Engine, set_name: str, tmp_path: Path
) -> None:
    rows = _good_rows()
    rows[2] = BAD_LINE_3[problem]
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = rlhf(pg_url, "prompts", "import", str(path), "--set", set_name, "--split", "train")
    assert_one_line_error(result, f"{path}:3:")
    assert stored(pg_engine, set_name) == (None, 0)


def test_csv_imports_and_csv_without_prompt_column_is_refused(
    pg_url: str, pg_engine: Engine, set_name: str, tmp_path: Path
) -> None:
    good = tmp_path / "prompts.csv"
    good.write_text(
        'id,prompt,category\na1,"Explain tides, briefly.",explanation\na2,Who wrote Emma?,\n',
        encoding="utf-8",
    )
    result = rlhf(pg_url, "prompts", "import", str(good), "--set", set_name, "--split", "train")
    assert result.returncode == 0, result.stderr
    assert stored(pg_engine, set_name) == ("train", 2)

    bad = tmp_path / "questions.csv"
    bad.write_text("id,question\nq1,What is a comet?\n", encoding="utf-8")
    other = f"{set_name}-b"
    refused = rlhf(pg_url, "prompts", "import", str(bad), "--set", other, "--split", "train")
    assert_one_line_error(refused, str(bad), "column")
    assert stored(pg_engine, other) == (None, 0)


def test_bogus_split_is_refused(pg_url: str, pg_engine: Engine, set_name: str) -> None:
    result = rlhf(pg_url, "prompts", "import", str(HELDOUT), "--set", set_name, "--split", "bogus")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "--split" in result.stderr and "train" in result.stderr
    assert stored(pg_engine, set_name) == (None, 0)
