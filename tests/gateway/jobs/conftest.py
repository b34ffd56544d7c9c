"""Job store fixtures: every store test runs on SQLite (a temp file) and on the local PostgreSQL (a
throw-away schema per test, dropped afterwards, so parallel runs never collide)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from store_helpers import PG_URL, FakeClock, drop_schema

from ablerefusal.gateway.jobs import JobStore
from ablerefusal.gateway.settings import QueueSettings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """URL and schema of a fresh, empty store location on one back end."""
    if request.param == "sqlite":
        yield {"url": f"sqlite:///{tmp_path}/jobs.db", "schema": None}
        return
    schema = f"t_jobs_{uuid.uuid4().hex[:12]}"
    try:
        yield {"url": PG_URL, "schema": schema}
    finally:
        drop_schema(schema)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_store(backend: dict[str, Any], clock: FakeClock) -> Iterator[Callable[..., JobStore]]:
    """``make_store(**queue_settings)``: a store on the current back end with the fake clock."""
    stores: list[JobStore] = []

    def _make(**queue: Any) -> JobStore:
        store = JobStore(backend["url"], QueueSettings(**queue), schema=backend["schema"], clock=clock)
        stores.append(store)
        return store

    yield _make
    for store in stores:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., JobStore]) -> JobStore:
    return make_store()
