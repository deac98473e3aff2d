"""Run Alembic migrations programmatically (the CLI and the test suite both use this)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from judging import assets


def alembic_config(url: str) -> Config:
    """Built here, not read from alembic.ini: an installed package has no alembic.ini (that file
    serves the `alembic` command in a checkout, e.g. `alembic revision --autogenerate`), and the
    logging it configures stays the caller's."""
    config = Config()
    config.set_main_option("script_location", str(assets.migrations_dir()))
    config.set_main_option("path_separator", "os")
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from judging.data.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
