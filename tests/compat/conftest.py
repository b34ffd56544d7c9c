"""Fixtures for the compatibility API tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from compat_live import API_KEY, DIFFUSERS_MODEL, SINGLE_FILE_MODEL, LiveGateway, gateway_proc, wait_for_models
from fastapi.testclient import TestClient

from ablerefusal.gateway.app import create_app
from ablerefusal.gateway.settings import load_settings
from holds import Hold


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
def live_gateway(tmp_path_factory: pytest.TempPathFactory, tiny_models_dir: Path) -> Iterator[LiveGateway]:
    """One gateway process supervising one CPU worker, shared by the live compat modules. The models dir
    holds the shared tiny models; SD 1.5 as a diffusers folder and as a single-file checkpoint (which has a
    sha256, as A1111 titles show) are the ones used."""
    root = tmp_path_factory.mktemp("compat-live")
    holds = Hold(root / "holds")
    with gateway_proc(root, tiny_models_dir, env=holds.env).start(timeout=180) as proc:
        wait_for_models(proc, {DIFFUSERS_MODEL, SINGLE_FILE_MODEL}, timeout_s=180)
        yield LiveGateway(proc.url, root / "outputs", API_KEY, DIFFUSERS_MODEL, SINGLE_FILE_MODEL, holds.folder)
