"""Trainer callbacks: register checkpoints and metrics in the DB, enforce the compute budget."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any, cast

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from typing_extensions import override

from judging.data import registry
from training.common import RunRecorder

log = logging.getLogger(__name__)

CHECKPOINT_WEIGHTS = ("adapter_model.safetensors", "model.safetensors")
CRASH_ENV = "RLHF_TEST_CRASH_AT"


def crash_point(name: str, step: int) -> None:
    """Tests only: SIGKILL this process at a named moment of a save.

    `RLHF_TEST_CRASH_AT=name` or `name:step`; names: `saved` (checkpoint folder written, nothing
    else), `resume_state` (resume state written, checkpoint not registered), `registered`.
    A power cut leaves no chance to clean up, which is what the crash tests need to reproduce.
    """
    wanted = os.environ.get(CRASH_ENV)
    if wanted and wanted in (name, f"{name}:{step}"):
        os.kill(os.getpid(), signal.SIGKILL)


class BudgetReached(Exception):
    """Raised after the final save of a trainer (PPO) whose loop cannot be told to stop."""


def checkpoint_path(args: TrainingArguments, step: int) -> Path:
    return Path(str(args.output_dir)) / f"checkpoint-{step}"


def is_complete(path: Path) -> bool:
    """A checkpoint folder holds weights and the trainer state written last by transformers."""
    has_weights = any((path / name).is_file() for name in CHECKPOINT_WEIGHTS) or any(
        path.glob("model-*.safetensors")
    )
    return has_weights and (path / "trainer_state.json").is_file()


def logged_metrics(path: Path, step: int) -> dict[str, Any]:
    """Metrics logged at `step`, read back from a checkpoint's trainer_state.json."""
    state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    merged: dict[str, Any] = {}
    for entry in state.get("log_history", []):
        if entry.get("step") == step:
            merged.update(entry)
    return merged


class RegistryCallback(TrainerCallback):
    """Writes every log to the time series and registers each checkpoint once its files exist."""

    def __init__(self, recorder: RunRecorder) -> None:
        self.recorder = recorder
        self.logs: dict[int, dict[str, Any]] = {}

    @override
    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        step = state.global_step
        self.logs.setdefault(step, {}).update(logs)
        with self.recorder.transaction() as session:
            registry.record_metrics(session, run_id=self.recorder.run_id, step=step, metrics=logs)

    @override
    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        step = state.global_step
        path = checkpoint_path(args, step)
        source = self.metrics_step(step)
        self.register(step, path, self.logs.get(source, {}), metrics_step=source)

    def metrics_step(self, step: int) -> int:
        """The logged step whose metrics belong to a checkpoint saved at `step`: `step` itself,
        or the latest logged one when logging_steps skipped it."""
        return step if step in self.logs or not self.logs else max(self.logs)

    def register(
        self, step: int, path: Path, metrics: dict[str, Any], metrics_step: int | None = None
    ) -> None:
        """One short transaction: the checkpoint row plus the run's compute so far.

        The stored metrics are those logged at `metrics_step` (normally `step`). Logged train
        metrics describe the model BEFORE that step's update (PPO: rollouts of the previous
        checkpoint's policy), so `metrics_step` and `metrics_policy_step` = `metrics_step - 1`
        are stored with them for the dashboard to say so.
        """
        if not self.recorder.is_main:
            return
        source = step if metrics_step is None else metrics_step
        metrics = {**metrics, "metrics_step": source, "metrics_policy_step": source - 1}
        kl_coef = metrics.get("objective/kl_coef")
        with self.recorder.transaction() as session:
            spent = self.recorder.flush_compute(session)
            registry.register_checkpoint(
                session,
                run_id=self.recorder.run_id,
                step=step,
                path=path,
                metrics=metrics,
                kl_coef=float(kl_coef) if kl_coef is not None else None,
                compute_spent_seconds=spent,
            )
        log.info("registered checkpoint %s (step %d)", path, step)
        crash_point("registered", step)


class EarlySaveCallback(TrainerCallback):
    """Saves once more at `step` (run.first_save), whatever `save_every` says."""

    def __init__(self, step: int) -> None:
        self.step = step

    @override
    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.step and state.global_step == self.step:
            control.should_save = True


class BudgetCallback(TrainerCallback):
    """Stops after max_steps or max_seconds, whichever comes first, saving the final step."""

    def __init__(
        self,
        *,
        max_steps: int,
        max_seconds: float,
        start_step: int = 0,
        raise_on_stop: bool,
        save: bool = True,
        prior_seconds: float = 0.0,
    ) -> None:
        self.save = save
        self.prior_seconds = prior_seconds
        self.max_steps = max_steps
        self.max_seconds = max_seconds
        self.start_step = start_step
        self.raise_on_stop = raise_on_stop
        self.started = time.monotonic()
        self.reason: str | None = None

    @override
    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # Resumed PPO runs continue the step counter; the trainer itself always starts at 0.
        if self.start_step and state.global_step < self.start_step:
            state.global_step = self.start_step
            if hasattr(state, "episode"):
                # PPO: TRL's global rollout batch (all processes), which it adds every update.
                state.episode = self.start_step * int(cast(Any, args).batch_size)
        state.max_steps = self.max_steps
        self.started = time.monotonic()

    @override
    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if state.global_step >= self.max_steps:
            self.reason = "max_steps"
        elif self.max_seconds and self.elapsed() >= self.max_seconds:
            self.reason = "max_seconds"
        if self.reason:
            control.should_save = self.save
            control.should_training_stop = True

    @override
    def on_save(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        if self.reason and self.raise_on_stop:
            raise BudgetReached(self.reason)

    def elapsed(self) -> float:
        """Training seconds counted against max_seconds, earlier attempts of a resume included."""
        return self.prior_seconds + time.monotonic() - self.started

    @property
    def status(self) -> str:
        """`stopped` when the clock ran out, `finished` when all steps ran."""
        return "stopped" if self.reason == "max_seconds" else "finished"


class KLControlCallback(TrainerCallback):
    """Feeds each step's KL to the controller and writes the new beta where TRL reads it.

    TRL 1.12's PPOTrainer computes `non_score_reward = -args.kl_coef * kl` afresh every step, so
    assigning `args.kl_coef` changes the penalty of the next rollout batch.
    """

    def __init__(self, controller: Any, episodes_per_step: int) -> None:
        self.controller = controller
        self.episodes_per_step = episodes_per_step

    @override
    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs and "objective/kl" in logs:
            cast(Any, args).kl_coef = self.controller.update(
                float(logs["objective/kl"]), self.episodes_per_step
            )
