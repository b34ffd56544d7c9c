"""Many concurrent claimers (processes × threads) over one shared store never claim a job twice."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from store_helpers import claim_until_empty, req

from ablerefusal.gateway.jobs import JobStore
from ablerefusal.gateway.schemas import JobStatus

JOBS = 120
PROCESSES = 3
THREADS = 3


def test_no_job_is_claimed_twice(backend: dict[str, Any]) -> None:
    store = JobStore(backend["url"], schema=backend["schema"])
    try:
        submitted = {
            store.submit(req(model=("tiny", "other")[i % 2], priority=i % 3, prompt=f"p{i}")).job.id
            for i in range(JOBS)
        }
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(PROCESSES, mp_context=ctx) as pool:
            futures = [
                pool.submit(claim_until_empty, backend["url"], backend["schema"], f"proc{n}", THREADS)
                for n in range(PROCESSES)
            ]
            claimed = [job_id for f in futures for job_id in f.result(timeout=240)]
        counts = Counter(claimed)
        assert [j for j in claimed if j.startswith("lost:")] == []
        assert [j for j, n in counts.items() if n > 1] == []
        assert set(counts) == submitted
        final = store.list_jobs(limit=JOBS)
        assert final.total == JOBS
        assert {(j.status, j.attempts) for j in final.items} == {(JobStatus.completed, 1)}
    finally:
        store.close()
