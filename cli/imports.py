"""`rlhf import ...`: bring outside data in (responses generated elsewhere)."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import console, db_session

app = typer.Typer(help="Import data produced outside the lab.", no_args_is_help=True)


@app.command("generations")
def generations(
    file: Path = typer.Argument(
        ..., help="JSONL: prompt_id or prompt, response, reward?, finish_reason?"
    ),
    checkpoint: int = typer.Option(
        ..., "--checkpoint", help="Checkpoint id the responses belong to."
    ),
    prompt_set: str | None = typer.Option(
        None, "--prompt-set", help="Prompt set name (default: first held-out set)."
    ),
    config_path: Path | None = typer.Option(
        None, "--config", help="Eval YAML with diagnostic thresholds."
    ),
) -> None:
    """Attach external responses to a checkpoint; a bad line is refused with nothing written."""
    from judging.evaluation.config import load_eval_config
    from judging.evaluation.imports import import_generations
    from judging.evaluation.queue import default_prompt_set

    config = load_eval_config(config_path)
    with db_session() as session:
        prompt_set_id = default_prompt_set(session, prompt_set or config.prompt_set).id
        evaluation = import_generations(
            session, path=file, checkpoint_id=checkpoint, prompt_set_id=prompt_set_id, config=config
        )
        coverage = (evaluation.summary or {}).get("coverage", {})
        flags = ", ".join(evaluation.flags or []) or "none"
        console.print(f"imported responses for checkpoint {checkpoint}: {coverage}; flags: {flags}")
