"""`rlhf db ...`: schema migrations, backup and restore."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import console, settings

app = typer.Typer(
    help="Database schema migrations (Alembic), backup and restore.", no_args_is_help=True
)


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


@app.command()
def backup(
    file: Path = typer.Argument(..., help="Backup file to write."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace FILE if it exists."),
) -> None:
    """Back up the whole database (pg_dump custom format, or a SQLite copy) while it runs."""
    from judging.data import backup as backups

    url = settings().resolved_database_url
    written = backups.backup(url, file, overwrite=overwrite)
    console.print(f"backup written to {written} ({written.stat().st_size} bytes)", highlight=False)


@app.command()
def restore(
    file: Path = typer.Argument(..., help="Backup file made by `rlhf db backup`."),
    yes: bool = typer.Option(False, "--yes", help="Confirm: the database's contents are replaced."),
) -> None:
    """Replace the database's contents with a backup (in one transaction on PostgreSQL)."""
    from judging.data import backup as backups
    from judging.errors import ConfigError

    if not yes:
        raise ConfigError("restore replaces everything in the database; pass --yes to go ahead")
    url = settings().resolved_database_url
    backups.restore(url, file)
    console.print(f"database restored from {file}", highlight=False)
