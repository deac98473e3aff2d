"""User mistakes around configuration get ONE clear line on stderr and a non-zero exit, never a
traceback. Each case runs the real entry point in a subprocess, from an empty folder so that no
developer `.env` leaks in.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_ENV_KEYS = ("DATABASE_URL", "RLHF_DATA_DIR", "RLHF_ENV", "ENVIRONMENT", "RLHF_SECRET_KEY")


def rlhf(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in _ENV_KEYS}
    # COLUMNS=40: a narrow terminal must still get the message on a single line.
    full_env = {**clean, "RLHF_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "40", **env}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_database_url_that_is_not_a_url(tmp_path: Path) -> None:
    line = one_line_error(rlhf(tmp_path, "db", "upgrade", DATABASE_URL="not-a-url"))
    assert "DATABASE_URL" in line and "not a valid" in line


def test_unsupported_database_backend(tmp_path: Path) -> None:
    line = one_line_error(rlhf(tmp_path, "db", "upgrade", DATABASE_URL="mysql://x/y"))
    assert "mysql" in line and "postgresql" in line


def test_postgres_port_where_nothing_listens(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:1/nothing"
    line = one_line_error(rlhf(tmp_path, "db", "upgrade", DATABASE_URL=url))
    assert "cannot connect" in line and "127.0.0.1:1" in line


def test_never_migrated_sqlite_database_says_run_upgrade(tmp_path: Path) -> None:
    line = one_line_error(rlhf(tmp_path, "prompts", "list"))
    assert "rlhf db upgrade" in line


def test_models_fetch_with_missing_gguf(tmp_path: Path) -> None:
    line = one_line_error(rlhf(tmp_path, "models", "fetch", "--gguf", "/nonexistent.gguf"))
    assert "/nonexistent.gguf" in line and "does not exist" in line
    assert not (tmp_path / "data" / "models" / ".SmolLM2-135M-Instruct.partial").exists()


def test_production_without_secret_is_refused(tmp_path: Path) -> None:
    result = rlhf(tmp_path, "prompts", "list", RLHF_ENV="production", DATABASE_URL="sqlite://")
    assert "RLHF_SECRET_KEY" in one_line_error(result)
