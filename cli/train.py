"""`rlhf train rm|ppo|sft|dpo`: run a training recipe from a YAML config (heavy imports inside)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from cli.common import console, settings

app = typer.Typer(help="Train reward models and policies (PPO, SFT, DPO).", no_args_is_help=True)

ConfigOpt = typer.Option(
    ..., "--config", "-c", help="YAML recipe, e.g. training/configs/ppo_cpu.yaml."
)
SetOpt = typer.Option(None, "--set", help="Override a setting: section.key=value (repeatable).")
ResumeOpt = typer.Option(False, "--resume", help="Continue the run of this name after a crash.")
NameOpt = typer.Option(
    None, "--name", help="Run name (default: the config's run.name or file stem)."
)


def _run(
    algorithm: str, config: Path, overrides: list[str] | None, resume: bool, name: str | None
) -> None:
    """Load and validate the config, then hand it to the trainer of `algorithm`."""
    from training.config import load_config
    from training.entry import train

    cfg = load_config(config, overrides or [], name=name)
    _log_training_events()
    s = settings()
    result = train(
        algorithm, cfg, database_url=s.resolved_database_url, data_dir=s.data_dir, resume=resume
    )
    console.print(
        f"run [bold]{cfg.run.name}[/bold] ({algorithm}): {result.status}; "
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


@app.command("rm")
def rm(
    config: Path = ConfigOpt,
    set_: list[str] = SetOpt,
    resume: bool = ResumeOpt,
    name: str = NameOpt,
) -> None:
    """Train a reward model on preference pairs and write its held-out report."""
    _run("rm", config, set_, resume, name)


@app.command("ppo")
def ppo(
    config: Path = ConfigOpt,
    set_: list[str] = SetOpt,
    resume: bool = ResumeOpt,
    name: str = NameOpt,
) -> None:
    """PPO against a reward model with KL control; registers every checkpoint."""
    _run("ppo", config, set_, resume, name)


@app.command("sft")
def sft(
    config: Path = ConfigOpt,
    set_: list[str] = SetOpt,
    resume: bool = ResumeOpt,
    name: str = NameOpt,
) -> None:
    """Supervised fine-tuning on chosen (or given) responses."""
    _run("sft", config, set_, resume, name)


@app.command("dpo")
def dpo(
    config: Path = ConfigOpt,
    set_: list[str] = SetOpt,
    resume: bool = ResumeOpt,
    name: str = NameOpt,
) -> None:
    """Direct preference optimisation on the reward model's preference pairs."""
    _run("dpo", config, set_, resume, name)
