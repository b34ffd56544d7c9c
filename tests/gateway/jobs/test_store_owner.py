"""Security finding 10 at the store: jobs carry the id of the key that submitted them (revision
0003_job_owner), and listings filter on it; on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect
from store_helpers import req
from test_migrations import QUEUED, load_v0

from ablerefusal.gateway.jobs import JobStore


def test_listings_filter_by_owner_with_global_positions(store: JobStore) -> None:
    alice = [store.submit(req(prompt=f"alice {i}"), owner="alice-id").job.id for i in range(2)]
    bob = store.submit(req(prompt="bob", priority=5), owner="bob-id").job.id
    unowned = store.submit(req(prompt="no keys")).job.id

    assert store.owner_of(alice[0]) == "alice-id" and store.owner_of(unowned) is None
    page = store.list_jobs(owner="alice-id")
    assert [j.id for j in page.items] == alice[::-1] and page.total == 2
    assert {j.id for j in store.list_jobs().items} == {*alice, bob, unowned}

    queue = store.queue_status(owner="alice-id")
    assert queue.counts.queued == 4  # counts stay global: they reveal no prompt
    # bob's higher-priority job runs first, so alice's positions are 2 and 3, not 1 and 2.
    assert [(j.id, j.queue_position) for j in queue.queued] == [(alice[0], 2), (alice[1], 3)]
    assert [j.id for j in store.queue_status(owner="bob-id").queued] == [bob]


def test_jobs_from_before_owners_are_nobodys(backend: dict[str, Any]) -> None:
    load_v0(backend)
    store = JobStore(backend["url"], schema=backend["schema"])
    try:
        assert "owner" in {c["name"] for c in inspect(store.engine).get_columns("ar_jobs")}
        assert store.owner_of(QUEUED) is None
        assert store.list_jobs(owner="alice-id").total == 0
    finally:
        store.close()
