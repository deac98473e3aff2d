"""The demo's child processes: `rlhf` sub-commands run to their end or in the background.

Interrupted (Ctrl-C, or SIGTERM turned into KeyboardInterrupt), each child still running is asked
to stop with SIGTERM and given time to do so (`interrupt`): `subprocess.run` would SIGKILL it
0.25 s later, and a killed evaluation worker leaves its job `running` (nobody takes it for
`stale_after_s`), a killed trainer its checkpoint half saved.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cli.demo.context import DemoContext
from judging.settings import PROJECT_ROOT

STOPPED_BY_SIGNAL = {130, 143, -signal.SIGINT, -signal.SIGTERM}
"""Exit codes of a child stopped by Ctrl-C or SIGTERM: click's 130, the shell's 128 + SIGTERM,
or the signal itself (Popen's negative return code)."""


def run_children(
    commands: list[list[str]], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> None:
    """Run the commands at once, to their end; raise CalledProcessError if any fails."""
    children = [subprocess.Popen(command, cwd=cwd, env=env) for command in commands]
    try:
        codes = [child.wait() for child in children]
    finally:
        for child in children:
            interrupt(child)
    if any(code in STOPPED_BY_SIGNAL for code in codes):
        # The child was stopped (the terminal's Ctrl-C reaches the whole process group): the
        # stage is interrupted, not failed, whether or not this process saw the signal too.
        raise KeyboardInterrupt
    failed = [(code, command) for code, command in zip(codes, commands, strict=True) if code]
    if failed:
        raise subprocess.CalledProcessError(*failed[0])


def run_child(
    command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> None:
    run_children([command], cwd=cwd, env=env)


def interrupt(child: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    """Ask a running child to stop (SIGTERM), wait for it, and kill it only past `timeout_s`."""
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)  # both `rlhf evaluate` and `rlhf train` stop cleanly on it
    try:
        child.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def rlhf_command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "cli.main", *args]


def rlhf(ctx: DemoContext, *args: str) -> None:
    """`rlhf ARGS` in a child process (same settings); Ctrl-C reaches it too."""
    run_child(rlhf_command(list(args)), cwd=PROJECT_ROOT, env=ctx.child_env())


def parallel_rlhf(ctx: DemoContext, args: list[str], copies: int) -> None:
    """`copies` children of `rlhf ARGS` at once (evaluation workers share the queue: each claims
    its own jobs); fails like `rlhf` if any child fails."""
    run_children([rlhf_command(args)] * max(1, copies), cwd=PROJECT_ROOT, env=ctx.child_env())


@contextmanager
def in_background(ctx: DemoContext, args: list[str], log: Path) -> Iterator[None]:
    """`rlhf ARGS` in the background, its output appended to `log`, while the body runs;
    asked to stop after it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        child = subprocess.Popen(
            rlhf_command(args),
            cwd=PROJECT_ROOT,
            env=ctx.child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield
    finally:
        interrupt(child)
