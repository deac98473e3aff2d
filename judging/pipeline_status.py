"""The demo pipeline's status: a small JSON file under the data dir, read by the index page.

One writer (`rlhf demo run`) replaces the file atomically (temporary name, then rename), so a
reader never sees half a file and Ctrl-C never leaves one. Pure stdlib: the web app reads it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STATES = ("pending", "running", "done", "skipped", "failed", "interrupted")


def status_path(data_dir: Path) -> Path:
    return data_dir / "demo" / "status.json"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class StageState:
    name: str
    title: str
    state: str = "pending"
    detail: str = ""
    started_at: str | None = None
    finished_at: str | None = None


@dataclass
class PipelineStatus:
    stages: list[StageState] = field(default_factory=list)
    state: str = "pending"
    updated_at: str = field(default_factory=_now)
    result: dict[str, Any] = field(default_factory=dict)
    """What later pages want: study ids, the recommendation, where the invite links are."""

    def stage(self, name: str) -> StageState:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def set(self, name: str, state: str, detail: str | None = None) -> None:
        if state not in STATES:
            raise ValueError(f"unknown stage state {state!r}")
        stage = self.stage(name)
        if state == "running" and stage.state != "running":
            stage.started_at = _now()
        if state in ("done", "skipped", "failed", "interrupted"):
            stage.finished_at = _now()
        stage.state = state
        if detail is not None:
            stage.detail = detail

    def summary(self) -> str:
        """One line for the console and the index page."""
        total = len(self.stages)
        finished = sum(s.state in ("done", "skipped") for s in self.stages)
        current = next(
            (s for s in self.stages if s.state in ("running", "failed", "interrupted")), None
        )
        if current is None:
            return f"Demo pipeline: {self.state} ({finished}/{total} stages)"
        detail = f": {current.detail}" if current.detail else ""
        return (
            f"Demo pipeline: {current.state} — stage {finished + 1}/{total}, "
            f"{current.title}{detail}"
        )


def write_status(data_dir: Path, status: PipelineStatus) -> None:
    status.updated_at = _now()
    path = status_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(status), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_status(data_dir: Path) -> PipelineStatus | None:
    """The last written status, or None when there is none (or it cannot be read)."""
    path = status_path(data_dir)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        stages = [StageState(**s) for s in raw.get("stages", [])]
        return PipelineStatus(
            stages=stages,
            state=str(raw.get("state", "pending")),
            updated_at=str(raw.get("updated_at", "")),
            result=dict(raw.get("result", {})),
        )
    except (OSError, ValueError, TypeError):
        return None
