"""Shared fixtures.

PostgreSQL: one fresh database per test run and per xdist worker (`rlhf_test_gw0_<random>`, ...),
migrated once with `alembic upgrade head`; each test runs inside a transaction that is rolled back
afterwards. Set TEST_DATABASE_URL to an admin URL of a server (default: local trust-auth
PostgreSQL). The data dir (RLHF_DATA_DIR) is a scratch folder per run and per worker, so tests in
parallel share no files and never write into the checkout's `var/`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from judging.data.db import make_engine
from judging.settings import Settings, default_data_dir, get_settings

FETCHED_MODELS = Path(os.environ.get("RLHF_DATA_DIR") or default_data_dir()) / "models"
"""Where `rlhf models fetch` (make model) put the weights: read from the data dir this run
started with, before `_scratch_data_dir` points RLHF_DATA_DIR elsewhere."""

FOLDER_MARKERS = {
    "integration": "integration",
    "e2e": "e2e",
    "training": "training",
    "bench": "slow",
    "install": "slow",
}
"""The marker every test in a folder gets, so `-m` selects by what a test needs (PostgreSQL,
a browser, torch) without each file declaring it; tests/unit gets none."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        try:
            folder = item.path.relative_to(root).parts[0]
        except ValueError:  # collected from outside tests/
            continue
        if marker := FOLDER_MARKERS.get(folder):
            item.add_marker(marker)


@pytest.fixture(scope="session", autouse=True)
def _scratch_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """State that code under test keeps without being given a data dir (get_settings(), CLI
    subprocesses: the secret key, runs, the embedded database) goes to this worker's folder."""
    patch = pytest.MonkeyPatch()
    patch.setenv("RLHF_DATA_DIR", str(tmp_path_factory.mktemp("data-dir")))
    get_settings.cache_clear()
    yield
    patch.undo()
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_presence_checks() -> Iterator[None]:
    """departures throttles presence checks per rater id in a process-wide dict; ids restart
    after `truncate_all`, so a check made in an earlier test must not silence this one's."""
    from judging.studies import departures

    departures._checked.clear()
    yield


ADMIN_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _admin_engine() -> Engine:
    return create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_url(worker_id: str) -> Iterator[str]:
    """URL of a freshly created and migrated database, dropped at the end of the run."""
    from judging.data.migrate import upgrade

    name = f"rlhf_test_{worker_id}_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # no server: integration tests cannot run at all
        pytest.exit(f"cannot create test database on {ADMIN_URL}: {exc}", returncode=3)
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    workerinput = getattr(request.config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else "main"


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_session(pg_engine: Engine) -> Iterator[Session]:
    """A session whose work is rolled back after the test, commits included (savepoints)."""
    connection = pg_engine.connect()
    transaction = connection.begin()
    session = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        yield session
    finally:
        session.close()
        transaction.rollback()
        connection.close()


@pytest.fixture
def test_settings(pg_url: str, tmp_path: Path) -> Settings:
    return Settings(DATABASE_URL=pg_url, RLHF_DATA_DIR=tmp_path, RLHF_ENV="test")  # type: ignore[call-arg]


@pytest.fixture
def client(test_settings: Settings, db_session: Session) -> Iterator[object]:
    """An HTTP client on the app whose requests share the test's rolled-back session."""
    from fastapi.testclient import TestClient

    from app.deps import get_db
    from app.main import create_app

    app = create_app(test_settings)

    def _session() -> Iterator[Session]:
        yield db_session
        db_session.flush()

    app.dependency_overrides[get_db] = _session
    with TestClient(app) as test_client:
        yield test_client
    app.state.engine.dispose()


def truncate_all(engine: Engine) -> None:
    """Empty every table (for tests that must commit, e.g. a live server in another thread)."""
    from judging.data.db import Base

    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="session")
def eval_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny base + reward model and LoRA adapters (zero-init, small and large noise) on the base."""
    from tests.evaluation_models import SMOLLM2, build_adapter, build_base_and_rm

    if not (SMOLLM2 / "tokenizer.json").is_file():
        pytest.skip(f"{SMOLLM2} is missing: run `rlhf models fetch` first")
    root = tmp_path_factory.mktemp("eval-models")
    models = build_base_and_rm(root)
    models["lora_zero"] = build_adapter(models["base"], root / "lora_zero")
    models["lora_small"] = build_adapter(models["base"], root / "lora_small", noise=0.02)
    models["lora_large"] = build_adapter(models["base"], root / "lora_large", noise=0.2)
    return models


@pytest.fixture
def committed_factory(pg_engine: Engine) -> Iterator[object]:
    """A session factory whose commits persist (workers commit per batch).

    Runs and prompt sets created during the test are deleted afterwards, with everything that
    cascades from them (checkpoints, evaluations, generations); other rows are left alone.
    """
    from sqlalchemy import delete, select

    from judging.data.db import make_session_factory
    from judging.data.models import PromptSet, TrainingRun

    with pg_engine.connect() as conn:
        runs = set(conn.scalars(select(TrainingRun.id)))
        sets = set(conn.scalars(select(PromptSet.id)))
    yield make_session_factory(pg_engine)
    with pg_engine.begin() as conn:
        conn.execute(delete(TrainingRun).where(TrainingRun.id.not_in(runs)))
        conn.execute(delete(PromptSet).where(PromptSet.id.not_in(sets)))


@pytest.fixture
def cli_db(
    pg_url: str, pg_engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Session]:
    """A committing session for `rlhf` commands run in-process (CliRunner) on the test database:
    DATABASE_URL, the data dir and a secret key point the CLI's settings there; every table is
    emptied afterwards."""
    from sqlalchemy.orm import sessionmaker

    from judging.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("RLHF_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RLHF_SECRET_KEY", "cli-test-secret")
    get_settings.cache_clear()
    session = sessionmaker(bind=pg_engine, expire_on_commit=False)()
    try:
        yield session
    finally:
        session.close()
        get_settings.cache_clear()
        truncate_all(pg_engine)
