"""Helpers shared by the job store and dispatcher tests (a unique module name: conftest is ambiguous)."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import create_engine, text

from ablerefusal.gateway.jobs.engine import normalize_url
from ablerefusal.gateway.schemas import GenerateRequest

PG_URL = os.environ.get("ABLEREFUSAL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


class FakeClock:
    """Store time the test moves by hand, so lease and backoff tests never sleep."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def drop_schema(schema: str) -> None:
    engine = create_engine(normalize_url(PG_URL))
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def req(**kw: Any) -> GenerateRequest:
    """A tiny valid request; keywords override."""
    base: dict[str, Any] = {"prompt": "a red cube", "width": 64, "height": 64, "steps": 2, "model": "tiny"}
    return GenerateRequest(**{**base, **kw})


def claim_until_empty(url: str, schema: str | None, worker: str, threads: int) -> list[str]:
    """Claim (coalescing on every other thread) and complete jobs until none is left; the ids claimed.

    Module-level so spawned processes of the concurrency test can run it.
    """
    from concurrent.futures import ThreadPoolExecutor

    from ablerefusal.gateway.jobs import JobStore

    store = JobStore(url, schema=schema)

    def loop(n: int) -> list[str]:
        mine: list[str] = []
        while True:
            claimed = store.claim(f"{worker}-{n}", max_images=4, coalesce=n % 2 == 0)
            if not claimed:
                if not store.has_claimable():
                    return mine
                continue
            for job in claimed:
                mine.append(job.id)
                # Fenced by the attempt: a job claimed twice would fail here for one claimer.
                if store.complete(job.id, attempt=job.attempt) is None:
                    mine.append(f"lost:{job.id}")

    try:
        with ThreadPoolExecutor(threads) as pool:
            return [job_id for ids in pool.map(loop, range(threads)) for job_id in ids]
    finally:
        store.close()
