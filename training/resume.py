"""Resume states for PPO (value model + controller state) and re-registration after a crash.

TRL's PPOTrainer neither resumes nor saves its value model. After each checkpoint we write
`<output>/resume/step-N/` (value model weights + state.json) next to, never inside, the checkpoint
folder; a resume picks the newest step that has both, reloads the LoRA policy from
`checkpoint-N`, and continues the step counter. The optimizer's moments are not kept (they would
cost about twice the trainable weights): a resumed run restarts Adam's statistics.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judging.data import registry
from training.callbacks import RegistryCallback, crash_point, is_complete, logged_metrics

log = logging.getLogger(__name__)

_STEP = re.compile(r"^(?:checkpoint|step)-(\d+)$")


@dataclass(frozen=True)
class ResumeState:
    step: int
    checkpoint: Path
    value_model: Path
    kl_coef: float
    elapsed_seconds: float = 0.0
    """Training time up to this step over all attempts, counted against `run.max_seconds`."""


def _steps(folder: Path) -> dict[int, Path]:
    if not folder.is_dir():
        return {}
    found = {}
    for child in folder.iterdir():
        match = _STEP.match(child.name)
        if match and child.is_dir():
            found[int(match.group(1))] = child
    return found


def complete_checkpoints(output_dir: Path) -> dict[int, Path]:
    """Checkpoint folders whose files are all written, by step."""
    return {step: path for step, path in _steps(output_dir).items() if is_complete(path)}


def write_state(
    output_dir: Path,
    step: int,
    value_model: Any,
    kl_coef: float,
    keep: int,
    elapsed_seconds: float = 0.0,
) -> Path:
    """Save the value model and controller state atomically (tmp folder, then rename).

    Written BEFORE the checkpoint is registered: a registered checkpoint always has the state
    a resume continues from, so no resume retrains (and overwrites) a registered step.
    """
    root = output_dir / "resume"
    final = root / f"step-{step}"
    tmp = root / f".step-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    value_model.save_pretrained(tmp / "value", safe_serialization=True)
    (tmp / "state.json").write_text(
        json.dumps({"step": step, "kl_coef": kl_coef, "elapsed_seconds": elapsed_seconds}),
        encoding="utf-8",
    )
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(_steps(root))[:-keep] if keep > 0 else []:
        shutil.rmtree(root / f"step-{old}", ignore_errors=True)
    crash_point("resume_state", step)
    return final


def latest_state(output_dir: Path) -> ResumeState | None:
    """Newest step with both a complete checkpoint and a complete resume state."""
    checkpoints = complete_checkpoints(output_dir)
    states = _steps(output_dir / "resume")
    for step in sorted(set(checkpoints) & set(states), reverse=True):
        state_file = states[step] / "state.json"
        if state_file.is_file() and (states[step] / "value" / "config.json").is_file():
            data = json.loads(state_file.read_text(encoding="utf-8"))
            return ResumeState(
                step,
                checkpoints[step],
                states[step] / "value",
                float(data["kl_coef"]),
                float(data.get("elapsed_seconds", 0.0)),
            )
    return None


def _known_steps(callback: RegistryCallback) -> set[int]:
    with callback.recorder.transaction() as session:
        run = registry.get_run(session, callback.recorder.run_id)
        return {checkpoint.step for checkpoint in run.checkpoints}


def register_missing(
    callback: RegistryCallback, output_dir: Path, upto: int | None = None
) -> list[int]:
    """Register complete checkpoint folders the database does not know (crash after save).

    `upto`: only steps up to the one a resume continues from; later folders are retrained.
    """
    if not callback.recorder.is_main:
        return []
    known = _known_steps(callback)
    added = []
    for step, path in sorted(complete_checkpoints(output_dir).items()):
        if step not in known and (upto is None or step <= upto):
            callback.register(step, path, logged_metrics(path, step))
            added.append(step)
    return added


def drop_unresumable(callback: RegistryCallback, output_dir: Path, after: int) -> list[int]:
    """Delete unregistered checkpoint folders past the resume step (crash before their state).

    The resumed run trains those steps again and writes new folders; keeping the old ones would
    let a later `--resume` register weights nobody continues from. Registered ones are kept: if
    a step is retrained, the registry sees the new checksum and re-queues its evaluations.
    """
    if not callback.recorder.is_main:
        return []
    known = _known_steps(callback)
    dropped = []
    for step, path in sorted(_steps(output_dir).items()):
        if step > after and step not in known:
            shutil.rmtree(path, ignore_errors=True)
            dropped.append(step)
    if dropped:
        log.warning("removed checkpoint folders without a resume state: steps %s", dropped)
    return dropped
