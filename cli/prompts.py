"""`rlhf prompts ...`: prompt sets for training and held-out judging."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from cli.common import console, db_session
from judging.data.prompts import PromptRecord, check_records
from judging.errors import InputFileError

app = typer.Typer(help="Prompt sets (train / held-out).", no_args_is_help=True)


def _from_hub(name: str, column: str, limit: int | None) -> list[PromptRecord]:
    """For users with internet: a `datasets` hub name such as tatsu-lab/alpaca."""
    from datasets import load_dataset  # heavy; only here

    dataset = load_dataset(name, split="train")
    if column not in dataset.column_names:
        raise InputFileError(name, None, f"dataset has no column {column!r}")
    rows = ((i + 1, {"prompt": row[column]}) for i, row in enumerate(dataset))
    records = check_records(name, rows)
    return records[:limit] if limit else records


@app.command("import")
def import_(
    file: str = typer.Argument(..., help="A .jsonl/.csv file, or a `datasets` hub name."),
    set_name: str = typer.Option(..., "--set", help="Name of the new prompt set."),
    split: str = typer.Option(..., help="train or heldout."),
    column: str = typer.Option("prompt", help="Column holding the prompt (hub datasets)."),
    limit: int | None = typer.Option(None, help="Keep only the first N prompts (hub datasets)."),
    skip_existing: bool = typer.Option(
        False, help="Do nothing (exit 0) when a set of that name already exists."
    ),
) -> None:
    """Import a prompt set; a malformed file is refused whole, naming the bad line."""
    from judging.data.prompts import parse_prompt_file, prompt_set_exists, store_prompt_set

    if split not in ("train", "heldout"):
        raise typer.BadParameter("must be 'train' or 'heldout'", param_hint="--split")
    path = Path(file)
    looks_like_hub = not path.exists() and "/" in file and path.suffix == ""
    records = _from_hub(file, column, limit) if looks_like_hub else parse_prompt_file(path)
    split_value: Literal["train", "heldout"] = split  # type: ignore[assignment]
    with db_session() as session:
        if skip_existing and prompt_set_exists(session, set_name):
            console.print(f"prompt set {set_name!r} already exists, skipping")
            return
        prompt_set = store_prompt_set(
            session, name=set_name, split=split_value, records=records, source=file
        )
        console.print(f"imported {len(records)} prompts into set {prompt_set.name!r} ({split})")


@app.command("list")
def list_() -> None:
    """List prompt sets with their sizes."""
    from sqlalchemy import func, select

    from judging.data.models import Prompt, PromptSet

    with db_session() as session:
        rows = session.execute(
            select(PromptSet.name, PromptSet.split, func.count(Prompt.id))
            .join(Prompt, isouter=True)
            .group_by(PromptSet.id)
            .order_by(PromptSet.name)
        ).all()
    for name, split, count in rows:
        console.print(f"{name}\t{split}\t{count}")
