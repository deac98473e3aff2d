"""`rlhf train ...` reports config mistakes as one line with exit code 1, before loading torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _rlhf(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from cli.main import main; sys.argv = ['rlhf', *sys.argv[1:]]; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("yaml_text", "override", "message"),
    [
        ("optim:\n  learning_rat: 1\n", None, "unknown key 'optim.learning_rat'"),
        ("run: {}\n", "optim.batch_size=eight", "'optim.batch_size' must be an integer"),
        ("run:\n  name: [\n", None, "bad.yaml: line 3"),
    ],
)
def test_config_errors_are_one_line(
    tmp_path: Path, yaml_text: str, override: str | None, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    extra = ["--set", override] if override else []
    result = _rlhf("train", "ppo", "--config", str(path), *extra)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
