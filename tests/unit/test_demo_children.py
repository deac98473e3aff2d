"""The demo's child processes get time to stop cleanly when the demo is interrupted.

`subprocess.run` SIGKILLs its child 0.25 s after a KeyboardInterrupt; an evaluation worker that
was killed that way left its job `running` (nobody could take it for `stale_after_s`) and a PPO
run could be killed mid-save. The child here needs about a second to stop, as a worker that
finishes its batch and gives its job back does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.demo.processes import run_child

CHILD = """
import signal, sys, time
from pathlib import Path
marker = Path(sys.argv[1])
def stop(signum, frame):
    time.sleep(1.0)  # finish the batch, give the job back
    marker.write_text(signal.Signals(signum).name)
    sys.exit(3)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
Path(sys.argv[2]).write_text("ready")
while True:
    time.sleep(0.05)
"""


def _interrupt_when_ready(ready: Path) -> threading.Thread:
    def fire() -> None:
        # Blocked here, the signal goes to the main thread, which waits for the child.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        for _ in range(400):
            if ready.exists():
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C reaches the demo process
                return
            threading.Event().wait(0.025)

    thread = threading.Thread(target=fire, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def ctrl_c_interrupts() -> Iterator[None]:
    """Python's own Ctrl-C handler for the test: run as a shell's background job (as CI may
    be), the test process inherits SIGINT ignored, and the SIGINT below would never arrive."""
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, saved)


@pytest.mark.usefixtures("ctrl_c_interrupts")
def test_an_interrupted_demo_lets_its_child_stop_cleanly(tmp_path: Path) -> None:
    marker, ready = tmp_path / "stopped", tmp_path / "ready"
    thread = _interrupt_when_ready(ready)
    with pytest.raises(KeyboardInterrupt):
        run_child([sys.executable, "-c", CHILD, str(marker), str(ready)])
    thread.join(timeout=5)
    assert marker.read_text() == "SIGTERM"  # asked to stop, given the time, never SIGKILLed


def test_a_failing_child_fails_the_stage(tmp_path: Path) -> None:
    import subprocess

    with pytest.raises(subprocess.CalledProcessError):
        run_child([sys.executable, "-c", "raise SystemExit(4)"])


def test_the_first_stop_signal_interrupts_and_later_ones_do_not() -> None:
    from judging.stopping import stop_on_signals

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        stop_on_signals()
        cleaned_up = False
        with pytest.raises(KeyboardInterrupt):
            try:
                signal.raise_signal(signal.SIGTERM)
            except KeyboardInterrupt:
                signal.raise_signal(signal.SIGTERM)  # the demo's SIGTERM after the Ctrl-C
                signal.raise_signal(signal.SIGINT)
                cleaned_up = True
                raise
        assert cleaned_up
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


@pytest.mark.parametrize("code", [130, 143, -signal.SIGTERM])
def test_a_child_stopped_by_a_signal_interrupts_the_stage(code: int) -> None:
    """Ctrl-C reaches the trainer too; its exit 130 made the stage `failed` with a traceback
    (as when the demo runs with SIGINT ignored, which a background job inherits)."""
    if code < 0:
        script = f"import os, signal; os.kill(os.getpid(), {-code})"
    else:
        script = f"raise SystemExit({code})"
    with pytest.raises(KeyboardInterrupt):
        run_child([sys.executable, "-c", script])


def test_demo_run_stops_on_sigint_even_when_started_with_sigint_ignored(tmp_path: Path) -> None:
    """A shell's background job starts with SIGINT ignored: `demo run` installs its own handler,
    so `demo up`'s SIGINT still interrupts it and its children are asked to stop."""
    import subprocess
    import time

    marker, ready = tmp_path / "stopped", tmp_path / "ready"
    parent = f"""
import sys
from cli.demo import command, processes, stages
child = [sys.executable, "-c", {CHILD!r}, {str(marker)!r}, {str(ready)!r}]
stages.run_demo = lambda ctx: processes.run_child(child)  # the pipeline: one long child
try:
    command.run(base_url="http://127.0.0.1:9")
except KeyboardInterrupt:
    sys.exit(42)
"""
    process = subprocess.Popen(
        [sys.executable, "-c", parent],
        cwd=Path(__file__).resolve().parents[2],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        start_new_session=True,
    )
    try:
        for _ in range(400):
            if ready.exists():
                break
            time.sleep(0.025)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 42
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever is left, if the stop failed
            os.killpg(process.pid, signal.SIGKILL)
    assert marker.read_text() == "SIGTERM"
