"""Helpers for real gateway (and worker) processes on loopback ports for integration tests.

Each process logs to a file in its tmp dir (shown when a test fails to start it); the gateway prints its
"ready at <url>" line on stdout, which is how the tests learn it is listening.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

START_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    """A child process started by a test, stopped by it."""

    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.popen = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill9(self) -> None:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(30)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._log.close()


@dataclass
class Gateway:
    """A gateway process and its files."""

    root: Path
    port: int
    extra: list[str]
    env: dict[str, str]
    proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output_dir(self) -> Path:
        return self.root / "outputs"

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "ablerefusal", "serve",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--database-url", f"sqlite:///{self.root / 'jobs.db'}",
            "--output-dir", str(self.output_dir),
            "--models-dir", str(self.root / "models"),
            *self.extra,
        ]  # fmt: skip

    def start(self, *, wait_ready: bool = True) -> None:
        self.proc = Proc(self.argv(), self.root / "gateway.log", self.env)
        self.proc.start()
        wait_until(lambda: _answers(f"{self.url}/api/v1/health"), self.proc, "gateway health")
        if wait_ready:
            wait_until(lambda: _answers(f"{self.url}/api/v1/ready"), self.proc, "a ready worker")

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(check: Any, proc: Proc | None, what: str, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.popen is not None and proc.popen.poll() is not None:
            pytest.fail(f"process exited ({proc.popen.returncode}) waiting for {what}:\n{proc.log_text()}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}" + (f":\n{proc.log_text()}" if proc else ""))


def wait_job(client: httpx.Client, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    """The job once it is terminal (polling; SSE has its own test)."""
    result: dict[str, Any] = {}

    def done() -> bool:
        result.update(client.get(f"/api/v1/generate/{job_id}").json())
        return result.get("status") in {"completed", "failed", "cancelled", "timed_out"}

    wait_until(done, None, f"job {job_id} to finish", timeout)
    return result


def make_gateway(root: Path, models: Path | None, *extra: str, env: dict[str, str] | None = None) -> Gateway:
    root.mkdir(parents=True, exist_ok=True)
    if models is not None:
        (root / "models").symlink_to(models, target_is_directory=True)
    return Gateway(root=root, port=free_port(), extra=list(extra), env=env or {})
