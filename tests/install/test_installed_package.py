"""A non-editable install runs on its own: `rlhf db upgrade` and `rlhf serve` from a directory
that is not the checkout find the templates, static files, migrations and shipped data inside the
installed package, and keep their state in the working directory's `var/`.

No network: pip builds the wheel with this environment's setuptools (--no-build-isolation) and
installs it alone (--no-deps) into a folder put first on PYTHONPATH; the dependencies are this
environment's. The build runs on a copy of the tree, so the checkout gets no build/ or egg-info.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory

from tests.live_app import free_port

ROOT = Path(__file__).resolve().parents[2]
# Not part of the distribution: environments, runtime state, caches, build output, fetched models.
SKIP_TOP = {".git", "var", "build", "screenshots", "test-results", "outputs", ".gpu"}
SKIP_ANY = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", "node_modules"}
STATE_VARIABLES = ("DATABASE_URL", "RLHF_DATA_DIR", "RLHF_SECRET_KEY", "RLHF_ENV", "PYTHONPATH")


def _ignore(folder: str, names: list[str]) -> set[str]:
    top = Path(folder) == ROOT
    skipped = {n for n in names if n in SKIP_ANY or n.endswith(".egg-info")}
    if top:
        skipped |= {n for n in names if n in SKIP_TOP or n.startswith(".venv")}
    if Path(folder) == ROOT / "data":
        skipped.add("models")  # fetched weights (older checkouts kept them here)
    return skipped


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder `pip install --target` filled from a copy of this tree."""
    base = tmp_path_factory.mktemp("install")
    source, target = base / "source", base / "site"
    shutil.copytree(ROOT, source, ignore=_ignore, symlinks=True)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    command += ["--no-build-isolation", "--no-compile", "--target", str(target), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return target


@pytest.fixture
def workdir(tmp_path: Path, installed: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """An empty working directory and an environment that imports only the installed copy."""
    env = {k: v for k, v in os.environ.items() if k not in STATE_VARIABLES}
    env["PYTHONPATH"] = str(installed)
    env["COLUMNS"] = "200"
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    yield cwd, env


def _rlhf(installed: Path, *args: str) -> list[str]:
    script = installed / "bin" / "rlhf"
    if script.is_file():
        return [sys.executable, str(script), *args]
    return [sys.executable, "-m", "cli.main", *args]


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_imports_come_from_the_installed_copy(
    installed: Path, workdir: tuple[Path, dict[str, str]]
) -> None:
    cwd, env = workdir
    code = "import app, cli, judging, training; print(judging.__file__, app.__file__)"
    for path in _run([sys.executable, "-c", code], cwd, env).split():
        assert Path(path).is_relative_to(installed), path


def test_upgrade_then_serve_from_elsewhere(
    installed: Path, workdir: tuple[Path, dict[str, str]]
) -> None:
    cwd, env = workdir
    _run(_rlhf(installed, "db", "upgrade"), cwd, env)
    state = cwd / "var"
    assert (state / "rlhf.db").is_file() and (state / "secret_key").is_file()
    head = ScriptDirectory(str(ROOT / "migrations")).get_current_head()
    assert _run(_rlhf(installed, "db", "current"), cwd, env).split() == [str(head)]

    port = free_port()
    argv = _rlhf(installed, "serve", "--host", "127.0.0.1", "--port", str(port))
    log = cwd / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            base = f"http://127.0.0.1:{port}"
            assert _get_when_up(f"{base}/healthz", server, log).status_code == 200
            # A visitor without a session is sent to the invite page: a template, by design 401.
            page = httpx.get(f"{base}/", timeout=10, follow_redirects=True)
            assert page.url.path == "/need-invite" and page.status_code == 401
            assert "You need an invite link" in page.text and "/static/app.css" in page.text
            for asset in ("/static/app.css", "/favicon.ico"):
                response = httpx.get(base + asset, timeout=10)
                assert response.status_code == 200 and response.content, asset
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                try:
                    server.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait(timeout=10)
    # State went to the working directory, never into the installed package.
    assert not list(installed.rglob("rlhf.db")) and not list(installed.rglob("secret_key"))


def test_shipped_data_is_installed(installed: Path, workdir: tuple[Path, dict[str, str]]) -> None:
    cwd, env = workdir
    code = (
        "from judging import assets; d = assets.shipped_data_dir(); print(d); "
        "print(*sorted(p.relative_to(d).as_posix() for p in d.rglob('*') if p.is_file()))"
    )
    first, files = _run([sys.executable, "-c", code], cwd, env).splitlines()
    assert Path(first).is_relative_to(installed)
    shipped = set(files.split())
    assert {"prompts/train.jsonl", "prompts/heldout.jsonl", "preferences/train.jsonl"} <= shipped
    for name in ("rm-onpolicy", "rm-onpolicy-eval"):
        assert f"reward_models/{name}/adapter_model.safetensors" in shipped
    assert not any(name.startswith("models/") for name in shipped)
    configs = installed / "training" / "configs"
    assert (configs / "eval_cpu.yaml").is_file() and (configs / "ppo_cpu.yaml").is_file()


def _get_when_up(url: str, server: subprocess.Popen[bytes], log: Path) -> httpx.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"rlhf serve exited with {server.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(url, timeout=5)
        except httpx.HTTPError:
            time.sleep(0.2)
    pytest.fail(f"rlhf serve did not answer within 60 s:\n{log.read_text()}")
