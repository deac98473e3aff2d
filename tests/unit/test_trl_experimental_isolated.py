"""`trl.experimental` may change without deprecation: exactly one file imports it."""

from __future__ import annotations

import os
import re
from pathlib import Path

from judging.settings import PROJECT_ROOT

PATTERN = re.compile(r"^\s*(from\s+trl\.experimental|import\s+trl\.experimental)", re.MULTILINE)
# Not sources: assets, runtime state (var/: models, runs) and build output (a copy of the sources).
SKIP = {"node_modules", "data", "var", "build", "__pycache__"}


def test_trl_experimental_is_imported_in_exactly_one_file() -> None:
    importers = []
    for root, dirs, files in os.walk(PROJECT_ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP and not d.startswith(".")]
        for name in files:
            path = Path(root) / name
            if name.endswith(".py") and PATTERN.search(
                path.read_text(encoding="utf-8", errors="replace")
            ):
                importers.append(path.relative_to(PROJECT_ROOT).as_posix())
    assert importers == ["training/ppo_trl.py"]
