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


@pytest.fixture(scope="session")
def worker_client(tiny_models_dir: Path) -> Iterator[TestClient]:
    """The worker over the four tiny models, all kept resident (cache_size 4) so each loads once."""
    app = create_app(WorkerSettings(models_dir=tiny_models_dir, device="cpu", cache_size=4, worker_id="test-worker"))
    with TestClient(app) as client:
        wait_ready(client)
        yield client


@pytest.fixture(scope="session")
def worker_service(worker_client: TestClient) -> WorkerService:
    service: WorkerService = worker_client.app.state.service  # type: ignore[attr-defined]
    return service
