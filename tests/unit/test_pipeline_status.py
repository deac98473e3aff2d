"""The demo pipeline runner: skips done stages, records Ctrl-C and failures, resumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.demo.runner import Stage, run_stages
from judging.pipeline_status import read_status, status_path


class Work:
    """A stage whose work is a counter; `interrupt_at` raises Ctrl-C once at that count."""

    def __init__(self, target: int, interrupt_at: int | None = None) -> None:
        self.count = 0
        self.target = target
        self.interrupt_at = interrupt_at
        self.calls = 0

    def done(self) -> bool:
        return self.count >= self.target

    def run(self, report):  # type: ignore[no-untyped-def]
        self.calls += 1
        while self.count < self.target:
            if self.count == self.interrupt_at:
                self.interrupt_at = None
                raise KeyboardInterrupt
            self.count += 1
            report(f"{self.count}/{self.target}")


def _stages(a: Work, b: Work) -> list[Stage]:
    return [Stage("a", "Stage A", a.done, a.run), Stage("b", "Stage B", b.done, b.run)]


def test_runs_then_skips_everything_on_a_rerun(tmp_path: Path) -> None:
    a, b = Work(2), Work(3)
    status = run_stages(_stages(a, b), tmp_path)
    assert status.state == "done" and [s.state for s in status.stages] == ["done", "done"]
    assert read_status(tmp_path).stage("b").detail == "3/3"  # type: ignore[union-attr]
    again = run_stages(_stages(a, b), tmp_path)
    assert (a.calls, b.calls) == (1, 1)
    assert [s.state for s in again.stages] == ["done", "done"]  # done before: stays done


def test_a_stage_without_its_inputs_is_skipped_with_the_reason_and_runs_once_they_exist(
    tmp_path: Path,
) -> None:
    a, b = Work(1), Work(1)
    reason: dict[str, str | None] = {"why": "no input file"}
    stages = [Stage("a", "Stage A", a.done, a.run, lambda: reason["why"]), *_stages(a, b)[1:]]
    status = run_stages(stages, tmp_path)
    assert status.state == "done" and a.calls == 0 and b.calls == 1
    assert [(s.state, s.detail) for s in status.stages] == [
        ("skipped", "no input file"),
        ("done", "1/1"),
    ]
    reason["why"] = None
    again = run_stages(stages, tmp_path)
    assert a.calls == 1 and [s.state for s in again.stages] == ["done", "done"]


def test_ctrl_c_is_recorded_and_the_rerun_resumes(tmp_path: Path) -> None:
    a, b = Work(2), Work(5, interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        run_stages(_stages(a, b), tmp_path)
    saved = read_status(tmp_path)
    assert saved is not None and saved.state == "interrupted"
    assert saved.stage("b").state == "interrupted"
    assert "interrupted" in saved.summary() and "Stage B" in saved.summary()
    assert not list(status_path(tmp_path).parent.glob("*.tmp"))
    status = run_stages(_stages(a, b), tmp_path)
    assert status.state == "done" and b.count == 5 and a.calls == 1


def test_a_failure_is_recorded_with_its_message(tmp_path: Path) -> None:
    def boom(report):  # type: ignore[no-untyped-def]
        raise ValueError("no reward model")

    stages = [Stage("rm", "Reward model", lambda: False, boom)]
    with pytest.raises(ValueError):
        run_stages(stages, tmp_path)
    saved = read_status(tmp_path)
    assert saved is not None and saved.stage("rm").state == "failed"
    assert "no reward model" in saved.stage("rm").detail


def test_unreadable_status_is_none(tmp_path: Path) -> None:
    status_path(tmp_path).parent.mkdir(parents=True)
    status_path(tmp_path).write_text("{not json")
    assert read_status(tmp_path) is None


def test_results_a_stage_writes_to_the_file_survive(tmp_path: Path) -> None:
    from judging.pipeline_status import write_status

    def record(report):  # type: ignore[no-untyped-def]
        status = read_status(tmp_path)
        assert status is not None
        status.result["recommendation"] = {"checkpoint_id": 7}
        write_status(tmp_path, status)

    def done() -> bool:
        saved = read_status(tmp_path)
        return saved is not None and "recommendation" in saved.result

    final = run_stages([Stage("rec", "Recommendation", done, record)], tmp_path)
    assert final.state == "done" and final.result["recommendation"] == {"checkpoint_id": 7}
