"""`rlhf train KIND`: run a training recipe (rm, ppo, sft or dpo) from a YAML config.

One command for every kind: the kinds differ only in the trainer `training.entry.train`
dispatches to, so they share the options (`--config`, `--set`, `--resume`, `--name`) and the
config schema. Heavy imports (torch, transformers) happen inside, after the config is validated.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path

import typer

from cli.common import console, settings


class Kind(StrEnum):
    """What `rlhf train` trains."""

    rm = "rm"
    """A reward model on preference pairs, with its held-out report."""
    ppo = "ppo"
    """PPO against a reward model with KL control; registers every checkpoint."""
    sft = "sft"
    """Supervised fine-tuning on chosen (or given) responses."""
    dpo = "dpo"
    """Direct preference optimisation on preference pairs."""


def train(
    kind: Kind = typer.Argument(
        ...,
        help="rm (reward model + held-out report), ppo (KL-controlled, every checkpoint "
        "registered), sft (chosen or given responses) or dpo (preference pairs).",
        case_sensitive=False,
        show_default=False,
    ),
    config: Path = typer.Option(
        ..., "--config", "-c", help="YAML recipe, e.g. training/configs/ppo_cpu.yaml."
    ),
    set_: list[str] = typer.Option(
        None, "--set", help="Override a setting: section.key=value (repeatable)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run of this name after a crash."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Run name (default: the config's run.name or file stem)."
    ),
) -> None:
    """Train a reward model or a policy (rm, ppo, sft, dpo) from a YAML recipe."""
    from training.config import load_config
    from training.entry import train as run_trainer

    cfg = load_config(config, set_ or [], name=name)
    _log_training_events()
    s = settings()
    result = run_trainer(
        kind.value, cfg, database_url=s.resolved_database_url, data_dir=s.data_dir, resume=resume
    )
    console.print(
        f"run [bold]{cfg.run.name}[/bold] ({kind.value}): {result.status}; "
        f"output in {result.output_dir}"
    )


def _log_training_events() -> None:
    """Registrations, resumes and stops on stderr (the `training` loggers, INFO)."""
    logger = logging.getLogger("training")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
