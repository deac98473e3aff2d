"""`rlhf registry ...`: the registry seam for checkpoints trained outside the lab's trainers."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from cli.common import console, db_session

app = typer.Typer(help="Register checkpoints written by other engines.", no_args_is_help=True)


@app.command("watch")
def watch(
    folder: Path = typer.Argument(..., help="The engine's save folder (holds checkpoint-N ...)."),
    run: str = typer.Option(..., "--run", help="Run name the checkpoints belong to."),
    base_model: str | None = typer.Option(
        None, "--base-model", help="Create the run if missing, with this base (step 0)."
    ),
    algorithm: str = typer.Option("ppo", "--algorithm", help="Of a created run: ppo|sft|dpo."),
    subdir: str = typer.Option(
        "", "--subdir", help="HF folder inside each step folder (verl: actor/huggingface)."
    ),
    settle: float = typer.Option(
        30.0, "--settle", min=0, help="Seconds a folder must stay unchanged to count as complete."
    ),
    interval: float = typer.Option(30.0, "--interval", min=0.1, help="Seconds between polls."),
    once: bool = typer.Option(False, "--once", help="One pass, then exit."),
) -> None:
    """Register complete checkpoint folders under FOLDER as they appear (Ctrl-C stops)."""
    from judging.data import registry
    from judging.data.watch import register_new
    from judging.errors import ConfigError, NotFoundError

    if algorithm not in ("ppo", "sft", "dpo"):
        raise ConfigError(f"--algorithm must be ppo, sft or dpo, not {algorithm!r}")
    folder = folder.resolve()
    with db_session() as session:
        existing = registry.get_run_by_name(session, run)
        if existing is None:
            if not base_model:
                raise NotFoundError(f"run {run!r} does not exist; pass --base-model to create it")
            created = registry.start_run(
                session,
                name=run,
                algorithm=algorithm,
                base_model=base_model,
                config={"external": True, "watched_folder": str(folder), "subdir": subdir},
                output_dir=str(folder),
            )
            registry.ensure_base_checkpoint(session, created)
        run_id = (existing or created).id
    console.print(f"watching {folder} for run [bold]{run}[/bold] (every {interval:g} s)")
    while True:
        with db_session() as session:
            steps = register_new(
                session, run_id=run_id, root=folder, subdir=subdir, settle_s=settle
            )
        for step in steps:
            console.print(f"registered step {step}")
        if once:
            return
        time.sleep(interval)
