"""`rlhf export report --study ID --format md|html`: the study report as Markdown or one HTML file.

Registered on the `rlhf export` group in cli/main.py. The recommendation is refreshed first (a new
row only when the verdicts changed since the stored one), as the web download does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from cli.common import console, db_session


def report(
    study: int = typer.Option(..., "--study", "-s", help="Study id."),
    fmt: str = typer.Option("md", "--format", "-f", help="md (Markdown) or html (one file)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File to write (default: stdout)."
    ),
) -> None:
    """The study report: recommendation, win rates, metric tables, compute cost (and plots)."""
    if fmt not in ("md", "html"):
        raise typer.BadParameter(f"must be md or html, got {fmt!r}", param_hint="--format")
    from app.report import build_report, render_html, render_markdown

    with db_session() as session:
        built = build_report(session, study, refresh=True)
        body = render_markdown(built) if fmt == "md" else render_html(built)
    if output is None:
        sys.stdout.write(body)
        return
    output.write_text(body, encoding="utf-8")
    console.print(f"wrote the {fmt} report of study {study} to {output}", highlight=False)
