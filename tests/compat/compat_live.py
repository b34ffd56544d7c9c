"""A live gateway process for the compat tests (a module with a unique name so test modules can import
its types; conftest.py files cannot be imported unambiguously)."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

API_KEY = "compat-test-key"


@dataclass(frozen=True)
class LiveGateway:
    url: str
    output_dir: Path
    api_key: str
    diffusers_model: str
    single_file_model: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, api_key: str, proc: subprocess.Popen[bytes], models: set[str], timeout_s: float) -> None:
    """Until the gateway is ready and its worker lists both models (or the process died)."""
    headers = {"Authorization": f"Bearer {api_key}"}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode} before it was ready")
        try:
            ready = httpx.get(f"{url}/api/v1/ready", headers=headers, timeout=2)
            listed = httpx.get(f"{url}/api/v1/models", headers=headers, timeout=2)
            if ready.status_code == 200 and models <= {m["id"] for m in listed.json()["models"]}:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gateway at {url} not ready within {timeout_s}s")
