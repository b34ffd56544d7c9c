"""Job store cost per job: the median time of each store operation one job goes through, on SQLite (the
default store; WAL, synchronous=NORMAL) or on PostgreSQL with ``--database-url``.

A job through the gateway is written four times before its answer — accepted (submit), claimed, its image
row, completed — and these writes are what make the queue survive a crash; this script prints what they
cost on this machine, beside the reads a job may also cause, so the per-job figure of
``gateway_overhead.py`` can be split into store time and everything else.

    .venv/bin/python benchmarks/store_ops.py [--jobs 300] [--database-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ablerefusal.gateway.jobs import JobStore
from ablerefusal.gateway.schemas import GenerateRequest
from ablerefusal.gateway.settings import QueueSettings

T = TypeVar("T")
WRITES = ("submit", "claim", "add_result", "complete_many")
READS = ("get", "next_eligible_at", "cancel_requested")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temp dir")
    args = parser.parse_args()
    warmup = min(50, args.jobs // 5)
    with tempfile.TemporaryDirectory() as tmp:
        store = JobStore(args.database_url or f"sqlite:///{tmp}/jobs.db", QueueSettings(max_queue_length=10**6))
        request = GenerateRequest(prompt="a red cube", width=64, height=64, steps=4, seed=1, model="tiny-sd15")
        times: dict[str, list[float]] = {name: [] for name in (*WRITES, *READS)}

        def timed(op: Callable[..., T], *args: Any, **kwargs: Any) -> T:
            t0 = time.perf_counter()
            out = op(*args, **kwargs)
            times[op.__name__].append(time.perf_counter() - t0)
            return out

        for _ in range(args.jobs):
            job = timed(store.submit, request).job
            timed(store.get, job.id)
            claims = timed(store.claim, "w0")
            timed(store.cancel_requested, claims)
            c = claims[0]
            timed(store.add_result, c.id, 0, f"{c.id}/0.png", 1, {}, "", attempt=c.attempt)
            timed(store.complete_many, claims)
            timed(store.next_eligible_at)
        store.close()
    medians = {name: 1000 * statistics.median(values[warmup:]) for name, values in times.items()}
    print(f"jobs={args.jobs} store={store.engine.dialect.name} (medians after {warmup} warm-up jobs)")
    for name in (*WRITES, *READS):
        print(f"  {name:18s} {medians[name]:6.2f} ms")
    print(f"the four writes of one job: {sum(medians[n] for n in WRITES):.2f} ms")


if __name__ == "__main__":
    main()
