"""Settings: fail fast on bad values, refuse unsafe defaults in production."""

from __future__ import annotations

from pathlib import Path

import pytest

from judging.errors import ConfigError
from judging.settings import load_settings


def test_embedded_default_is_sqlite_under_data_dir(tmp_path: Path) -> None:
    settings = load_settings(RLHF_DATA_DIR=tmp_path, DATABASE_URL="")
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'rlhf.db'}"


def test_state_defaults_to_var_apart_from_the_committed_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from judging import settings as module

    monkeypatch.delenv("RLHF_DATA_DIR", raising=False)
    settings = load_settings(RLHF_SECRET_KEY="k" * 40)
    assert settings.data_dir == module.PROJECT_ROOT / "var"  # a checkout: its own var/
    # Installed (no pyproject.toml above the packages): var/ of the working directory.
    monkeypatch.setattr(module, "PROJECT_ROOT", tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path)
    assert load_settings(RLHF_SECRET_KEY="k" * 40).data_dir == tmp_path / "var"


def test_plain_postgresql_url_uses_psycopg3() -> None:
    settings = load_settings(DATABASE_URL="postgresql://u:p@db:5432/lab")
    assert settings.resolved_database_url == "postgresql+psycopg://u:p@db:5432/lab"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("not a url", "not a valid database URL"),
        ("mysql://u@h/db", "supported: postgresql, sqlite"),
    ],
)
def test_invalid_database_url_is_one_line_config_error(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(DATABASE_URL=url)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_production_refuses_dev_secret() -> None:
    with pytest.raises(ConfigError, match="RLHF_SECRET_KEY"):
        load_settings(RLHF_ENV="production", DATABASE_URL="postgresql://u@h/db")


def test_production_refuses_short_secret() -> None:
    with pytest.raises(ConfigError, match="32"):
        load_settings(
            RLHF_ENV="production", DATABASE_URL="postgresql://u@h/db", RLHF_SECRET_KEY="x"
        )


def test_production_requires_database_url() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_settings(RLHF_ENV="production", RLHF_SECRET_KEY="k" * 40, DATABASE_URL="")


def test_production_accepts_safe_values() -> None:
    settings = load_settings(
        RLHF_ENV="production", RLHF_SECRET_KEY="k" * 40, DATABASE_URL="postgresql://u@h/db"
    )
    assert settings.environment == "production"


def test_no_proxy_is_trusted_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RLHF_TRUSTED_PROXIES", raising=False)
    assert load_settings(RLHF_SECRET_KEY="x" * 40).trusted_proxy_list == []


def test_trusted_proxies_are_addresses_or_networks() -> None:
    settings = load_settings(
        RLHF_SECRET_KEY="x" * 40, RLHF_TRUSTED_PROXIES=" 10.0.0.5, 172.18.0.1/16,"
    )
    assert settings.trusted_proxy_list == ["10.0.0.5", "172.18.0.0/16"]
    with pytest.raises(ConfigError, match=r"RLHF_TRUSTED_PROXIES holds 'proxy\.local'"):
        load_settings(RLHF_SECRET_KEY="x" * 40, RLHF_TRUSTED_PROXIES="proxy.local")
    with pytest.raises(ConfigError, match=r"holds '\*'"):
        load_settings(RLHF_SECRET_KEY="x" * 40, RLHF_TRUSTED_PROXIES="*")
