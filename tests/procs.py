"""Start real CLI processes (``ablerefusal worker`` or any other) on free loopback ports, for tests.

``Proc`` starts a command, forwards its stdout+stderr to a log file (shown when it fails to come up),
waits until an HTTP readiness path answers 200, and stops it SIGTERM → grace → SIGKILL. Ports are picked
free at start (bind port 0), since several engineers' suites run on the same machine at once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proc:
    def __init__(
        self,
        args: list[str],
        *,
        port: int,
        log_path: Path,
        ready_path: str = "/v1/ready",
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.args = args
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.ready_path = ready_path
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180.0) -> Proc:
        """Start and wait until ``ready_path`` answers 200; raises with the log tail if it does not."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.args[:4]} exited with {self.popen.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=2.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.args[:4]} not ready after {timeout}s:\n{self.log_tail()}")

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def kill9(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(30)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> Proc:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def worker_proc(
    models_dir: Path, log_path: Path, *extra: str, device: str = "cpu", env: dict[str, str] | None = None
) -> Proc:
    """A real ``ablerefusal worker`` on a free port (not started: call ``.start()``)."""
    port = free_port()
    args = [
        sys.executable, "-m", "ablerefusal", "worker",
        "--host", "127.0.0.1", "--port", str(port), "--device", device, "--models-dir", str(models_dir),
        *extra,
    ]  # fmt: skip
    return Proc(args, port=port, log_path=log_path, env=env)
