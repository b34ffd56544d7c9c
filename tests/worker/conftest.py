"""Worker fixtures: one in-process worker app (real FastAPI app, real engine, CPU) per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from worker_helpers import wait_ready

from ablerefusal.worker.app import create_app
from ablerefusal.worker.service import WorkerService
from ablerefusal.worker.settings import WorkerSettings
from holds import Hold


@pytest.fixture(scope="session")
def worker_hold_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The in-process worker's test hold folder (tests/holds.py)."""
    return tmp_path_factory.mktemp("worker-holds")


@pytest.fixture
def hold(worker_hold_dir: Path) -> Iterator[Hold]:
    with Hold(worker_hold_dir) as held:
        yield held


@pytest.fixture(scope="session")
def worker_client(tiny_models_dir: Path, worker_hold_dir: Path) -> Iterator[TestClient]:
    """The worker over the four tiny models, all kept resident (cache_size 4) so each loads once."""
    settings = WorkerSettings(
        models_dir=tiny_models_dir, device="cpu", cache_size=4, worker_id="test-worker", test_hold_dir=worker_hold_dir
    )
    app = create_app(settings)
    with TestClient(app) as client:
        wait_ready(client)
        yield client


@pytest.fixture(scope="session")
def worker_service(worker_client: TestClient) -> WorkerService:
    service: WorkerService = worker_client.app.state.service  # type: ignore[attr-defined]
    return service
