"""Markers follow folders (tests/conftest.py, FOLDER_MARKERS): a test file never sets a folder's
marker itself, so `-m` selects exactly the folders, and a test that needs what another folder
provides (torch for tests/training, a browser for tests/e2e) lives in that folder."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import FOLDER_MARKERS

TESTS = Path(__file__).resolve().parents[1]


def test_no_test_file_sets_a_folder_marker() -> None:
    names = "|".join(sorted(set(FOLDER_MARKERS.values()) - {"slow"}))
    pattern = re.compile(rf"pytest\.mark\.({names})\b")
    offenders = [
        f"{path.relative_to(TESTS)}: {match.group(0)}"
        for path in sorted(TESTS.rglob("*.py"))
        if path.name != "conftest.py"
        for match in pattern.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, offenders
