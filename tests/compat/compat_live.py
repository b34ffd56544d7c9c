"""A live gateway process for the compat tests (a module with a unique name so test modules can import
its types; conftest.py files cannot be imported unambiguously)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from procs import Proc, free_port

API_KEY = "compat-test-key"
# Ids of the shared tiny models (tests/conftest.py) these tests generate with.
DIFFUSERS_MODEL = "tiny-sd15"
SINGLE_FILE_MODEL = "tiny-sd15-single"


@dataclass(frozen=True)
class LiveGateway:
    url: str
    output_dir: Path
    api_key: str
    diffusers_model: str
    single_file_model: str
    hold_dir: Path  # the worker's test hold folder (tests/holds.py)


def gateway_proc(
    root: Path,
    models_dir: Path,
    *,
    workers: int = 1,
    api_key: str | None = API_KEY,
    env: dict[str, str] | None = None,
) -> Proc:
    """A real ``ablerefusal serve`` with a SQLite store, ``workers`` local CPU workers and an API key."""
    port = free_port()
    args = [
        sys.executable, "-m", "ablerefusal", "serve",
        "--port", str(port),
        "--workers", str(workers),
        "--device", "cpu",
        "--models-dir", str(models_dir),
        "--output-dir", str(root / "outputs"),
        "--input-dir", str(root / "inputs"),
        "--database-url", f"sqlite:///{root / 'jobs.db'}",
        *(["--api-key", api_key] if api_key else []),
    ]  # fmt: skip
    return Proc(args, port=port, log_path=root / "gateway.log", ready_path="/api/v1/health", env=env)


def wait_for_models(proc: Proc, models: set[str], timeout_s: float) -> None:
    """Until the gateway is ready and its worker lists ``models``: health alone says nothing of workers."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ready = httpx.get(f"{proc.url}/api/v1/ready", timeout=2)
            listed = httpx.get(f"{proc.url}/api/v1/models", headers=headers, timeout=2)
            if ready.status_code == 200 and models <= {m["id"] for m in listed.json()["models"]}:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"gateway at {proc.url} has no ready worker with {models}:\n{proc.log_tail()}")
