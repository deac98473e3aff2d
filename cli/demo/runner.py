"""The demo's stage runner: each stage asks what is done and does only the rest; the status file
(`judging.pipeline_status`) records every step, so Ctrl-C or a failure leaves a resumable pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from judging.pipeline_status import PipelineStatus, StageState, read_status, write_status


@dataclass(frozen=True)
class Stage:
    """One resumable step: `done()` looks at the database/files, `run()` does the missing work."""

    name: str
    title: str
    done: Callable[[], bool]
    """True when nothing is left to do (checked before and after `run`)."""
    run: Callable[[Callable[[str], None]], None]
    """Does the missing work; its argument `report(detail)` updates the status line."""
    skip: Callable[[], str | None] = field(default=lambda: None)
    """Why the stage cannot run here (its inputs are absent), or None. A skipped stage is not a
    failure: the status says why, and a later run does it once the inputs exist."""


def fresh_status(stages: list[Stage], previous: PipelineStatus | None) -> PipelineStatus:
    """The stage list of this run, carrying over what an earlier run recorded about each."""
    old = {s.name: s for s in previous.stages} if previous else {}
    return PipelineStatus(
        stages=[old.get(s.name, StageState(s.name, s.title)) for s in stages],
        result=dict(previous.result) if previous else {},
    )


def run_stages(
    stages: list[Stage],
    data_dir: Path,
    on_change: Callable[[PipelineStatus], None] | None = None,
) -> PipelineStatus:
    """Run every stage whose work is not done; skip the rest. Ctrl-C and errors are recorded.

    A stage that raises leaves the status 'interrupted' (KeyboardInterrupt) or 'failed' and the
    exception propagates; each stage's own writes are atomic, so a rerun resumes where it was.
    """
    status = fresh_status(stages, read_status(data_dir))
    status.state = "running"

    def save() -> None:
        # Stages record results (study ids, the recommendation) in the file themselves.
        on_disk = read_status(data_dir)
        if on_disk is not None:
            status.result.update(on_disk.result)
        write_status(data_dir, status)
        if on_change is not None:
            on_change(status)

    save()
    for stage in stages:
        reason = stage.skip()
        if reason is not None:
            status.set(stage.name, "skipped", reason)
            save()
            continue
        if stage.done():
            if status.stage(stage.name).state != "done":
                status.set(stage.name, "skipped", "already done")
            save()
            continue
        status.set(stage.name, "running", "")
        save()

        def report(detail: str, name: str = stage.name) -> None:
            status.set(name, "running", detail)
            save()

        try:
            stage.run(report)
        except KeyboardInterrupt:
            status.set(stage.name, "interrupted", "stopped by Ctrl-C; run again to resume")
            status.state = "interrupted"
            save()
            raise
        except Exception as exc:
            status.set(stage.name, "failed", f"{type(exc).__name__}: {exc}"[:500])
            status.state = "failed"
            save()
            raise
        if not stage.done():
            status.set(stage.name, "failed", "finished without completing its work")
            status.state = "failed"
            save()
            raise RuntimeError(f"stage {stage.name} finished without completing its work")
        status.set(stage.name, "done")
        save()
    status.state = "done"
    save()
    return status
