"""Fixtures for the compatibility API tests."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from compat_live import API_KEY, LiveGateway, free_port, wait_ready
from fastapi.testclient import TestClient

from ablerefusal.gateway.app import create_app
from ablerefusal.gateway.settings import load_settings


def app_client(tmp: Path, api_keys: list[str]) -> TestClient:
    """A real gateway app on a real SQLite store, with no workers (for everything that needs no image)."""
    sections: dict[str, Any] = {
        "storage": {
            "database_url": f"sqlite:///{tmp / 'jobs.db'}",
            "output_dir": str(tmp / "outputs"),
            "models_dir": str(tmp / "models"),
        },
        "workers": {"local": 0},
        "auth": {"api_keys": api_keys},
    }
    return TestClient(create_app(load_settings(None, sections)))


@pytest.fixture
def open_client(tmp_path: Path) -> Iterator[TestClient]:
    with app_client(tmp_path, []) as client:
        yield client


@pytest.fixture
def keyed_client(tmp_path: Path) -> Iterator[TestClient]:
    with app_client(tmp_path, [API_KEY]) as client:
        yield client


@pytest.fixture(scope="session")
def live_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    """A real gateway process (SQLite store, API key) supervising one real CPU worker with two tiny SD 1.5
    models: a diffusers folder and a single-file checkpoint (which has a sha256, as A1111 titles show)."""
    from ablerefusal.worker.tiny import make_tiny

    root = tmp_path_factory.mktemp("compat-live")
    models_dir = root / "models"
    diffusers_model = make_tiny(models_dir, "sd15", "diffusers", name="compat-tiny").name
    single_file_model = make_tiny(models_dir, "sd15", "single-file", name="compat-tiny-ckpt").stem
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        sys.executable, "-m", "ablerefusal", "serve",
        "--port", str(port),
        "--workers", "1",
        "--device", "cpu",
        "--models-dir", str(models_dir),
        "--output-dir", str(root / "outputs"),
        "--database-url", f"sqlite:///{root / 'jobs.db'}",
        "--api-key", API_KEY,
    ]  # fmt: skip
    log = (root / "gateway.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(url, API_KEY, proc, {diffusers_model, single_file_model}, timeout_s=180)
        yield LiveGateway(url, root / "outputs", API_KEY, diffusers_model, single_file_model)
    except BaseException:
        log.flush()
        sys.stderr.write((root / "gateway.log").read_text(errors="replace")[-4000:])
        raise
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
