"""The demo's side of its status file (`judging.pipeline_status`, which the web app reads):
the results stages leave for later stages and pages, and the console's status line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from judging.pipeline_status import PipelineStatus, read_status, write_status


def set_result(data_dir: Path, key: str, value: Any) -> None:
    status = read_status(data_dir)
    if status is not None:
        status.result[key] = value
        write_status(data_dir, status)


def get_result(data_dir: Path, key: str) -> Any:
    status = read_status(data_dir)
    return status.result.get(key) if status else None


def status_line(data_dir: Path) -> str:
    current = read_status(data_dir)
    return current.summary() if current else "the demo pipeline has not run yet"


def echo_changes(echo: Callable[[str], None]) -> Callable[[PipelineStatus], None]:
    """A runner's `on_change` that echoes the summary line each time it differs from the last."""
    last = {"line": ""}

    def show(status: PipelineStatus) -> None:
        line = status.summary()
        if line != last["line"]:
            echo(line)
            last["line"] = line

    return show
