"""The load benchmark in miniature: 8 raters for a few seconds, then the exactly-once audit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from judging.settings import PROJECT_ROOT
from tests.conftest import ADMIN_URL

pytestmark = pytest.mark.slow


def test_short_load_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    figures = tmp_path / "load.json"
    done = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "bench" / "load_raters.py"),
            "--raters",
            "8",
            "--seconds",
            "6",
            "--workers",
            "1",
            "--json",
            str(figures),
        ],
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TEST_DATABASE_URL": ADMIN_URL},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(figures.read_text())
    audit = result["audit"]
    assert audit["acknowledged"] > 20 and audit["lost"] == 0
    assert audit["assignments_with_two"] == 0 and audit["stored_not_acknowledged"] == 0
    assert result["errors"] == 0 and result["submit"]["count"] >= audit["acknowledged"]
