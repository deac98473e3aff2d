"""Whole-database backup and restore: pg_dump/pg_restore (custom format) or SQLite's online API.

PostgreSQL: `pg_dump --format=custom` is a consistent snapshot taken while the app keeps running;
restore replaces every object in one transaction (`--clean --if-exists --single-transaction`), so a
failed restore leaves the database as it was. The password goes through PGPASSWORD, never argv.
SQLite: the online backup API copies page by page under the library's own locking, so writers
may keep going; restore copies the file back the same way.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from judging.errors import ConfigError, InputFileError

_SQLITE_MAGIC = b"SQLite format 3\x00"
_PGDUMP_MAGIC = b"PGDMP"


def _libpq(url: URL) -> tuple[list[str], dict[str, str]]:
    """Connection arguments for the PostgreSQL tools, and the environment with the password."""
    args = ["--dbname", str(url.database or "")]
    for flag, value in (("--host", url.host), ("--port", url.port), ("--username", url.username)):
        if value is not None:
            args += [flag, str(value)]
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    return args, env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConfigError(f"{name} is not installed (apt-get install postgresql-client)")
    return path


def _run(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        reason = lines[0] if lines else f"exit code {done.returncode}"
        raise ConfigError(f"{Path(argv[0]).name} failed: {reason}")


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise ConfigError("an in-memory SQLite database cannot be backed up")
    return Path(url.database)


def backup(database_url: str, target: Path, *, overwrite: bool = False) -> Path:
    """Write a full backup of the database to `target`."""
    if target.exists() and not overwrite:
        raise ConfigError(f"{target} exists; pass --overwrite to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    url = make_url(database_url)
    scratch = target.with_name(f".{target.name}.partial")
    if url.get_backend_name() == "postgresql":
        args, env = _libpq(url)
        _run([_tool("pg_dump"), "--format=custom", "--file", str(scratch), *args], env)
    else:
        source_path = _sqlite_path(url)
        if not source_path.is_file():
            raise ConfigError(f"the SQLite database {source_path} does not exist")
        scratch.unlink(missing_ok=True)
        with sqlite3.connect(source_path) as source, sqlite3.connect(scratch) as copy:
            source.backup(copy)
        copy.close()
    scratch.replace(target)  # a reader of `target` never sees half a backup
    return target


def restore(database_url: str, source: Path) -> None:
    """Replace the database's contents with the backup in `source`."""
    if not source.is_file():
        raise ConfigError(f"backup file {source} does not exist")
    head = _head(source)
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        if not head.startswith(_PGDUMP_MAGIC):
            raise InputFileError(str(source), None, "not a pg_dump custom-format backup")
        args, env = _libpq(url)
        _run(
            [
                _tool("pg_restore"),
                "--clean",
                "--if-exists",
                "--no-owner",
                "--single-transaction",
                "--exit-on-error",
                *args,
                str(source),
            ],
            env,
        )
        return
    if not head.startswith(_SQLITE_MAGIC):
        raise InputFileError(str(source), None, "not a SQLite database backup")
    target = _sqlite_path(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source) as backup_db, sqlite3.connect(target) as live:
        backup_db.backup(live)
    live.close()


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(16)
