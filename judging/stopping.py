"""Stop a long command once, cleanly: the first SIGTERM or SIGINT raises KeyboardInterrupt,
later ones are ignored.

The demo's Ctrl-C reaches the whole process group and the demo then also sends SIGTERM to its
children; a second KeyboardInterrupt raised inside the first one's clean-up (giving an
evaluation job back to the queue, marking a training run stopped) would leave the job
`running` or the run `running`. SIGTERM must stop like Ctrl-C too: a process started in the
background by a shell inherits SIGINT ignored.
"""

from __future__ import annotations

import signal
from types import FrameType


def _stop_once(_signum: int, _frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """Install the handlers (main thread only, as Python requires)."""
    signal.signal(signal.SIGTERM, _stop_once)
    signal.signal(signal.SIGINT, _stop_once)
