"""Entry point of the `rlhf` console script.

Sub-commands live in their own modules and import heavy libraries (torch, transformers, uvicorn)
only inside the command body, so `rlhf --help` stays instant and the web host needs no torch.
Every LabError becomes a one-line message and exit code 1, never a traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape
from sqlalchemy.exc import DBAPIError

from cli import (
    db,
    evaluate,
    export,
    export_report,
    imports,
    ladder,
    models,
    prompts,
    raters,
    registry,
    serve,
    simulate,
    study,
    train,
)
from cli.common import err_console
from cli.demo import command as demo
from judging.errors import LabError

app = typer.Typer(
    name="rlhf",
    help="RLHF checkpoint lab: train, evaluate, judge and pick the best checkpoint.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db.app, name="db")
app.add_typer(models.app, name="models")
app.add_typer(prompts.app, name="prompts")
app.add_typer(raters.app, name="raters")
app.add_typer(study.app, name="study")
app.command("serve")(serve.serve)
app.command("train")(train.train)
app.command("evaluate")(evaluate.evaluate)
app.command("rescore")(evaluate.rescore)
app.add_typer(imports.app, name="import")
app.add_typer(ladder.app, name="ladder")
export.app.command("report")(export_report.report)
app.add_typer(export.app, name="export")
app.add_typer(registry.app, name="registry")
app.add_typer(simulate.app, name="simulate")
app.add_typer(demo.app, name="demo")


def _database_message(exc: DBAPIError) -> str:
    text = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return f"the database is not migrated ({text}); run `rlhf db upgrade` first"
    return f"database error: {text}"


def main() -> None:
    try:
        app()
    except LabError as exc:
        err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except DBAPIError as exc:
        err_console.print(
            f"[bold red]error:[/bold red] {escape(_database_message(exc))}", highlight=False
        )
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
