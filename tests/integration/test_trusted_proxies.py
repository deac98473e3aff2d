"""Which peers may name the client in X-Forwarded-For: none unless RLHF_TRUSTED_PROXIES says so.

The app runs as `rlhf serve` runs it (a real uvicorn in a subprocess): uvicorn's own default
trusts X-Forwarded-For from 127.0.0.1, so a guesser on the same host (or behind a local proxy
that passes the header through) could send each invite guess as a new "client" and never be
throttled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from judging.settings import PROJECT_ROOT
from tests.live_app import free_port


def _serve(pg_url: str, data_dir: Path, trusted: str | None) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "DATABASE_URL": pg_url,
        "RLHF_DATA_DIR": str(data_dir),
        "RLHF_ENV": "test",
        "RLHF_SECRET_KEY": "proxy-test-secret-" + "k" * 32,
    }
    env.pop("RLHF_TRUSTED_PROXIES", None)
    env.pop("FORWARDED_ALLOW_IPS", None)
    if trusted is not None:
        env["RLHF_TRUSTED_PROXIES"] = trusted
    argv = [sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        argv,
        env=env,
        cwd=PROJECT_ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"rlhf serve exited with {process.returncode}"
            assert time.monotonic() < deadline, "rlhf serve did not start"
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)


def _guess(url: str, forwarded_for: str) -> int:
    response = httpx.post(
        f"{url}/invite", data={"token": "guess"}, headers={"X-Forwarded-For": forwarded_for}
    )
    return response.status_code


def test_forwarded_for_from_loopback_is_not_trusted_by_default(pg_url: str, tmp_path: Path) -> None:
    for url in _serve(pg_url, tmp_path, None):
        codes = [_guess(url, f"203.0.113.{i}") for i in range(15)]
        assert codes[:10] == [404] * 10 and set(codes[10:]) == {429}, codes


def test_a_trusted_proxy_names_the_client(pg_url: str, tmp_path: Path) -> None:
    for url in _serve(pg_url, tmp_path, "127.0.0.1"):
        codes = [_guess(url, "203.0.113.7") for _ in range(11)]
        assert codes[-1] == 429, codes
        # Another client behind the same proxy is not the guesser.
        assert _guess(url, "203.0.113.8") == 404
        # The proxy appends the address it saw: a client cannot pose as another one.
        assert _guess(url, "203.0.113.99, 203.0.113.7") == 429
