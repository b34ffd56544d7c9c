"""Many concurrent claimers (processes and threads) over one shared store never claim a job twice."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from store_helpers import claim_until_empty, req

from ablerefusal.gateway.jobs import JobStore, QueueFull
from ablerefusal.gateway.schemas import JobStatus
from ablerefusal.gateway.settings import QueueSettings

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


def test_concurrent_submits_never_pass_the_queue_limit(backend: dict[str, Any]) -> None:
    limit = 20
    store = JobStore(backend["url"], QueueSettings(max_queue_length=limit), schema=backend["schema"])

    def submit_five(n: int) -> list[bool]:
        accepted = []
        for i in range(5):
            try:
                store.submit(req(prompt=f"t{n}-{i}"))
                accepted.append(True)
            except QueueFull:
                accepted.append(False)
        return accepted

    try:
        with ThreadPoolExecutor(8) as pool:
            outcomes = [ok for oks in pool.map(submit_five, range(8)) for ok in oks]
        assert outcomes.count(True) == limit
        assert store.counts().queued == limit
    finally:
        store.close()
