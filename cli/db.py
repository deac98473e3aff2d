"""`rlhf db ...`: schema migrations."""

from __future__ import annotations

import typer

from cli.common import console, settings

app = typer.Typer(help="Database schema migrations (Alembic).", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Migrate the database up to REVISION (default: head)."""
    from judging.data import migrate
    from judging.data.db import check_connection, make_engine

    url = settings().resolved_database_url
    engine = make_engine(url)
    check_connection(engine)
    engine.dispose()
    migrate.upgrade(url, revision)
    console.print(f"database at revision [bold]{migrate.current_revision(url)}[/bold]")


@app.command()
def downgrade(
    revision: str = typer.Argument(..., help="Target revision, e.g. base or -1."),
) -> None:
    """Migrate the database down to REVISION."""
    from judging.data import migrate

    url = settings().resolved_database_url
    migrate.downgrade(url, revision)
    console.print(f"database at revision [bold]{migrate.current_revision(url) or 'base'}[/bold]")


@app.command()
def current() -> None:
    """Print the database's current revision."""
    from judging.data import migrate

    console.print(migrate.current_revision(settings().resolved_database_url) or "base")
