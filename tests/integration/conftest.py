"""Fixtures for integration tests: real gateway and worker processes on loopback ports."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from gateway_procs import Gateway, make_gateway

PG_URL = os.environ.get("ABLEREFUSAL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


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


@pytest.fixture(scope="module")
def pg_schema() -> Iterator[str]:
    """A throw-away PostgreSQL schema for one module's gateways (search_path in their URL), dropped at the end."""
    schema = f"t_it_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
