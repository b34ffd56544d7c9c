"""Fixtures for integration tests: real gateway and worker processes on loopback ports."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_procs import Gateway, make_gateway


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir holding the tiny SD 1.5 model (made once per session, in a child process so the test
    process does not pay for importing torch)."""
    models = tmp_path_factory.mktemp("models")
    code = "import sys; from pathlib import Path; from ablerefusal.testing.tiny import make_tiny; " \
        "make_tiny(Path(sys.argv[1]), 'sd15', 'diffusers')"  # fmt: skip
    subprocess.run([sys.executable, "-c", code, str(models)], check=True, timeout=300)
    return models


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Any]:
    """Start gateways for one test; all are stopped at its end."""
    started: list[Gateway] = []

    def factory(*extra: str, models: Path | None = None, env: dict[str, str] | None = None,
                wait_ready: bool = True, name: str = "gw") -> Gateway:  # fmt: skip
        gw = make_gateway(tmp_path / name, models, *extra, env=env)
        gw.start(wait_ready=wait_ready)
        started.append(gw)
        return gw

    yield factory
    for gw in started:
        gw.stop()
