"""Browser fixtures: a live uvicorn server on 127.0.0.1 and Debian's headless Chromium.

The live server runs in another thread with its own connections, so data for these tests is
committed for real and every table is truncated afterwards.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from judging.settings import Settings
from tests.conftest import truncate_all

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(pg_url: str, pg_engine: Engine, tmp_path: Path) -> Iterator[str]:
    import uvicorn

    from app.main import create_app

    settings = Settings(DATABASE_URL=pg_url, RLHF_DATA_DIR=tmp_path, RLHF_ENV="test")  # type: ignore[call-arg]
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("live server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        truncate_all(pg_engine)


@pytest.fixture
def committed_session(pg_engine: Engine) -> Iterator[Session]:
    """A session whose commits are real (the live server must see the data)."""
    session = sessionmaker(bind=pg_engine, expire_on_commit=False)()
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: apt-get install chromium chromium-driver")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    yield page
    context.close()


def sign_in(page: object, live_server: str, token: str) -> None:
    """Open the invite link as a person would (token in the fragment) and wait until
    static/invite.js has posted it and the app has sent the browser on (to /rate or /admin)."""
    page.goto(f"{live_server}/invite#{token}")  # type: ignore[attr-defined]
    page.wait_for_url(lambda url: "/invite" not in url)  # type: ignore[attr-defined]
