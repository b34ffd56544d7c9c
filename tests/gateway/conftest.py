"""Fixtures for in-process gateway tests: a real app on a real SQLite store, with no workers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ablerefusal.gateway.app import create_app
from ablerefusal.gateway.settings import Settings, load_settings


def gateway_settings(tmp: Path, **sections: dict[str, Any]) -> Settings:
    base: dict[str, Any] = {
        "storage": {
            "database_url": f"sqlite:///{tmp / 'jobs.db'}",
            "output_dir": str(tmp / "outputs"),
            "input_dir": str(tmp / "inputs"),
            "models_dir": str(tmp / "models"),
        },
        "workers": {"local": 0},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return load_settings(None, base)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings in this test's tmp dir; keyword arguments are config sections to merge."""
    return lambda **sections: gateway_settings(tmp_path, **sections)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return gateway_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c
