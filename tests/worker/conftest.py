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


_MAKE_ADAPTERS = """
import shutil, sys
from pathlib import Path
from ablerefusal.testing.tiny_adapters import make_tiny_adapters, make_tiny_lora
src, dest = Path(sys.argv[1]), Path(sys.argv[2])
for family in ("sd15", "sdxl"):
    shutil.copytree(src / f"tiny-{family}", dest / f"tiny-{family}")
    make_tiny_adapters(dest, family)
    make_tiny_lora(dest, family, "kohya", name=f"tiny-{family}-second", seed=7)
"""


@pytest.fixture(scope="session")
def adapter_models_dir(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny diffusers models plus tiny adapters (testing/tiny_adapters.py): per family LoRAs
    ``tiny-<family>-kohya``, ``-peft``, ``-second`` (kohya, other weights), ``-locon`` (kohya's tensors plus the
    ResNet convolutions), embedding ``tiny-<family>-embedding``,
    and VAE ``tiny-vae``. A copy, so the shared tiny models folder stays checkpoints only."""
    import subprocess
    import sys

    dest = tmp_path_factory.mktemp("adapter-models")
    subprocess.run(
        [sys.executable, "-c", _MAKE_ADAPTERS, str(tiny_models_dir), str(dest)],
        check=True,
        timeout=600,
        capture_output=True,
    )
    return dest


@pytest.fixture(scope="session")
def adapter_client(adapter_models_dir: Path) -> Iterator[TestClient]:
    """A worker over ``adapter_models_dir`` (both tiny models resident)."""
    settings = WorkerSettings(models_dir=adapter_models_dir, device="cpu", cache_size=2, worker_id="adapter-worker")
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client
