"""The app under a real uvicorn in a subprocess (own process group), for fault and load tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from judging.settings import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveApp:
    """`start`, `kill` (SIGKILL, no goodbye), `stop`; the port stays the same across restarts."""

    def __init__(
        self,
        database_url: str,
        data_dir: Path,
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = {
            **os.environ,
            "PYTHONPATH": str(PROJECT_ROOT),
            "DATABASE_URL": database_url,
            "RLHF_DATA_DIR": str(data_dir),
            "RLHF_ENV": "test",
            "RLHF_SECRET_KEY": "live-app-test-secret-" + "k" * 32,
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        argv = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"]
        argv += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        argv += ["--no-access-log", "--workers", str(self.workers), "--timeout-keep-alive", "30"]
        self.process = subprocess.Popen(
            argv, env=self.env, cwd=PROJECT_ROOT, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the app did not become healthy in time")

    def kill(self) -> None:
        """SIGKILL the server and its workers: no shutdown, no flush, like a power cut."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
