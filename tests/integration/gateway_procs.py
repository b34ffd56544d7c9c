"""Helpers for real gateway (and worker) processes on loopback ports for integration tests.

Each process logs to a file in its tmp dir (shown when a test fails to start it); the gateway prints its
"ready at <url>" line on stdout, which is how the tests learn it is listening.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from procs import Proc, free_port

START_TIMEOUT_S = 120.0


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
            "--input-dir", str(self.root / "inputs"),
            "--models-dir", str(self.root / "models"),
            *self.extra,
        ]  # fmt: skip

    def start(self, *, wait_ready: bool = True) -> None:
        log_path = self.root / "gateway.log"
        self.proc = Proc(self.argv(), port=self.port, log_path=log_path, env=self.env, ready_path="/api/v1/health")
        self.proc.start(START_TIMEOUT_S)
        if wait_ready:
            wait_until(lambda: _answers(f"{self.url}/api/v1/ready"), self.proc, "a ready worker")

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(grace=30)  # a gateway drains its calls first


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
            pytest.fail(f"process exited ({proc.popen.returncode}) waiting for {what}:\n{proc.log_tail()}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}" + (f":\n{proc.log_tail()}" if proc else ""))


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
