"""Two gateways' worker pools sharing three stand-in workers through one store (SQLite file, real leases):
they split the workers, a pool over its share hands one back only when its dispatcher does not use it, and
a stopped or dead pool's workers pass to the other. At every look, no worker is dispatchable in both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fake_worker import FakeWorker

from ablerefusal.gateway.fleet.registry import WorkerRegistry
from ablerefusal.gateway.jobs import JobStore
from ablerefusal.gateway.settings import Settings
from ablerefusal.gateway.workers.pool import WorkerPool

LEASE_S = 0.9


@pytest.fixture
def fakes() -> Iterator[list[FakeWorker]]:
    with ExitStack() as stack:
        yield [stack.enter_context(FakeWorker()) for _ in range(3)]


@pytest.fixture
async def make_pool(
    make_settings: Callable[..., Settings], tmp_path: Path, fakes: list[FakeWorker]
) -> AsyncIterator[Callable[[str], WorkerPool]]:
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    pools: list[WorkerPool] = []

    def make(name: str) -> WorkerPool:
        settings = make_settings(
            workers={"local": 0, "urls": [f.url for f in fakes], "probe_interval_s": 0.05, "lease_s": LEASE_S}
        )
        registry = WorkerRegistry(store.engine, lease_s=LEASE_S)
        pool = WorkerPool(settings, registry=registry, gateway_id=name)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.stop()
    store.close()


def mine(pool: WorkerPool) -> set[str]:
    return {h.id for h in pool.dispatchable()}


async def watch(pools: list[WorkerPool], check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait for ``check``, asserting at every look that no worker is dispatchable in two pools."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        sets = [mine(p) for p in pools]
        for n, first in enumerate(sets):
            for second in sets[n + 1 :]:
                assert not first & second, (first, second)
        if check():
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}: {sets}")
        await asyncio.sleep(0.01)


async def test_two_pools_split_the_workers_and_hand_over(make_pool: Callable[[str], WorkerPool]) -> None:
    a = make_pool("gw-a")
    await a.start()
    await watch([a], lambda: len(mine(a)) == 3, "A to drive all three")

    # B joins while A's dispatcher uses every worker: A stops calling one (over its share of 2) but keeps
    # its lease until the worker is unused.
    a.in_use = lambda _worker_id: True
    b = make_pool("gw-b")
    await b.start()
    await watch([a, b], lambda: len(mine(a)) == 2, "A to stop calling its surplus worker")
    for _ in range(3):  # three lease rounds of B: nothing to take
        await asyncio.sleep(LEASE_S / 3)
        await watch([a, b], lambda: True, "")
        assert mine(b) == set()
    a.in_use = lambda _worker_id: False
    await watch([a, b], lambda: len(mine(a)) == 2 and len(mine(b)) == 1, "B to take the handed-back worker")
    assert {h.holder for h in b.handles if h.id in mine(b)} == {"gw-b"}

    # A stops: it hands its leases back, and B takes them.
    await a.stop()
    await watch([b], lambda: len(mine(b)) == 3, "B to drive all three")


async def test_a_dead_pools_workers_pass_on_after_its_lease(make_pool: Callable[[str], WorkerPool]) -> None:
    a, b = make_pool("gw-a"), make_pool("gw-b")
    await a.start()
    await b.start()
    await watch([a, b], lambda: len(mine(a)) + len(mine(b)) == 3 and bool(mine(b)), "the split")
    # A "dies": its lease rounds stop (no hand-back). Its own view lapses too, so it stops calling them.
    for task in a._tasks:
        if task.get_name() == "worker-leases":
            task.cancel()
    await watch([a, b], lambda: len(mine(b)) == 3, "B to take A's workers after the lease")
    assert mine(a) == set()
