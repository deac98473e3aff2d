"""Typed settings from the environment (and an optional `.env`), validated on load."""

from __future__ import annotations

import ipaddress
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from judging.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The folder holding the packages: a source checkout's root, or site-packages once installed.
Assets are found through `judging.assets`, never through this."""


def default_data_dir() -> Path:
    """`var/` in a source checkout (beside the committed `data/`, ignored by git), else `var/`
    in the working directory: an installed package must not write into site-packages."""
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return PROJECT_ROOT / "var"
    return Path.cwd() / "var"


_DEV_SECRET = "dev-only-insecure-secret-key-change-me"
_SUPPORTED_BACKENDS = {"sqlite", "postgresql"}


class Settings(BaseSettings):
    """Everything the CLI, web app, trainers and workers read from the environment."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["local", "test", "production"] = Field(
        default="local", validation_alias=AliasChoices("RLHF_ENV", "ENVIRONMENT")
    )
    """`production` refuses the insecure development defaults."""

    data_dir: Path = Field(default_factory=default_data_dir, validation_alias="RLHF_DATA_DIR")
    """The runtime state: the embedded database, the secret key, fetched and merged models,
    training runs, evaluations and the demo's files. Never the committed assets (`data/`)."""

    database_url: str = Field(default="", validation_alias="DATABASE_URL")
    """SQLAlchemy URL. Empty means the embedded SQLite file `<data_dir>/rlhf.db`."""

    secret_key: SecretStr = Field(default=SecretStr(""), validation_alias="RLHF_SECRET_KEY")
    """Signs session cookies and CSRF tokens. Unset: a random key generated on first run and kept
    in `<data_dir>/secret_key` (mode 0600). The old public development key is always refused."""

    cookie_secure: bool | None = Field(default=None, validation_alias="RLHF_COOKIE_SECURE")
    """Mark the session cookie Secure. Unset: always in production (whatever the scheme the app
    sees behind its proxy), otherwise only on https requests."""

    max_body_bytes: int = Field(default=256 * 1024, ge=1024, validation_alias="RLHF_MAX_BODY_BYTES")
    """Request bodies larger than this are refused with 413 before they are read."""

    lease_seconds: int = Field(default=1800, ge=1, validation_alias="RLHF_LEASE_SECONDS")
    """A served item with no verdict after this long goes to another eligible rater."""

    idle_release_seconds: int = Field(
        default=24 * 3600, ge=1, validation_alias="RLHF_IDLE_RELEASE_SECONDS"
    )
    """A rater with no activity for this long counts as gone: their unstarted and skipped items
    go to other eligible raters (revoked and excluded raters' items go at once)."""

    max_skips: int = Field(default=2, ge=1, validation_alias="RLHF_MAX_SKIPS")
    """After this many skips by one rater an item goes to another eligible rater."""

    db_pool_size: int = Field(default=10, ge=1, le=100, validation_alias="RLHF_DB_POOL_SIZE")
    """Connections each web worker keeps open to PostgreSQL (plus as many again in bursts). Five,
    SQLAlchemy's default, made the app open and close a connection on most requests under 100
    raters; mind PostgreSQL's `max_connections` (100 by default) times the worker count."""

    trusted_proxies: str = Field(default="", validation_alias="RLHF_TRUSTED_PROXIES")
    """Comma-separated addresses or networks (CIDR) of the reverse proxies in front of the app.
    Only a request from one of them may name its client in X-Forwarded-For (and its scheme in
    X-Forwarded-Proto); empty (the default) trusts nobody, loopback included, so the address the
    invite throttle counts is the connecting peer's. Name only proxies that overwrite or append
    to X-Forwarded-For: any other sender could pose as any client."""

    host: str = Field(default="127.0.0.1", validation_alias="RLHF_HOST")
    port: int = Field(default=8000, ge=1, le=65535, validation_alias="RLHF_PORT")

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value:
            return value
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(f"DATABASE_URL is not a valid database URL: {value!r}") from None
        backend = url.get_backend_name()
        if backend not in _SUPPORTED_BACKENDS:
            raise ValueError(f"DATABASE_URL uses {backend!r}; supported: postgresql, sqlite")
        if backend == "postgresql" and url.drivername == "postgresql":
            # Plain postgresql:// would pick psycopg2, which we do not ship.
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        entries = []
        for entry in (part.strip() for part in value.split(",")):
            if not entry:
                continue
            try:
                parsed = (
                    ipaddress.ip_network(entry, strict=False)
                    if "/" in entry
                    else ipaddress.ip_address(entry)
                )
            except ValueError:
                raise ValueError(
                    f"RLHF_TRUSTED_PROXIES holds {entry!r}, which is no IP address or network"
                ) from None
            entries.append(str(parsed))
        return ",".join(entries)

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> Settings:
        secret = self.secret_key.get_secret_value()
        if secret == _DEV_SECRET:
            raise ValueError(
                "RLHF_SECRET_KEY is the public development key from the repository; "
                "unset it (a random key is generated) or set your own"
            )
        if self.environment == "production":
            if len(secret) < 32:
                raise ValueError(
                    "RLHF_SECRET_KEY must be set to 32+ random characters in production"
                )
            if not self.database_url:
                raise ValueError("DATABASE_URL must point at PostgreSQL in production")
        if not secret:
            self.secret_key = SecretStr(_data_dir_secret(self.data_dir))
        return self

    @property
    def secure_cookies(self) -> bool | None:
        """True/False when decided by configuration; None: follow the request's scheme."""
        if self.cookie_secure is not None:
            return self.cookie_secure
        return True if self.environment == "production" else None

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [entry for entry in self.trusted_proxies.split(",") if entry]

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'rlhf.db'}"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"


def _data_dir_secret(data_dir: Path) -> str:
    """The key in `<data_dir>/secret_key`, created (0600, atomically) on first use."""
    path = data_dir / "secret_key"
    try:
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            scratch = data_dir / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
            fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
            try:
                os.link(scratch, path)  # fails if another process won the race: use theirs
            except FileExistsError:
                pass
            finally:
                scratch.unlink()
        key = path.read_text().strip()
    except OSError as exc:
        raise ValueError(
            f"cannot keep the generated secret key in {path}: {exc.strerror}"
        ) from None
    if len(key) < 32:
        raise ValueError(f"{path} holds a key shorter than 32 characters; delete it to regenerate")
    return key


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation failures into a one-line ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first.get("msg", exc)).removeprefix("Value error, ")
        raise ConfigError(message) from None


@lru_cache
def get_settings() -> Settings:
    return load_settings()


def new_token() -> str:
    """An unguessable URL-safe token (invite links, opaque ids)."""
    return secrets.token_urlsafe(24)
