"""Coalescing claims through the real store (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable

from store_helpers import FakeClock, req

from ablerefusal.gateway.jobs import JobStore
from ablerefusal.gateway.schemas import JobStatus


def test_coalesced_claim_takes_compatible_jobs_in_order(store: JobStore) -> None:
    head = store.submit(req(priority=3)).job.id
    other_size = store.submit(req(width=128)).job.id
    same_a = store.submit(req(batch_size=2)).job.id
    other_model = store.submit(req(model="other")).job.id
    same_b = store.submit(req()).job.id
    too_many = store.submit(req()).job.id
    claimed = store.claim("w", max_images=4, coalesce=True)
    assert [c.id for c in claimed] == [head, same_a, same_b]
    assert all(c.attempt == 1 for c in claimed)
    assert {j.id for j in store.queue_status().queued} == {other_size, other_model, too_many}
    assert store.get(same_a).status == JobStatus.running


def test_coalescing_respects_priority_of_stale_jobs(make_store: Callable[..., JobStore], clock: FakeClock) -> None:
    store = make_store(max_priority_skip_s=2.0)
    head = store.submit(req(priority=5)).job.id
    blocker = store.submit(req(priority=3, model="other")).job.id
    low = store.submit(req(priority=0)).job.id
    clock.advance(3)  # blocker has now waited past the skip window
    assert [c.id for c in store.claim("w", max_images=4, coalesce=True)] == [head]
    assert [c.id for c in store.claim("w", max_images=4, coalesce=True)] == [blocker]
    assert [c.id for c in store.claim("w", max_images=4, coalesce=True)] == [low]


def test_loaded_model_preference(make_store: Callable[..., JobStore], clock: FakeClock) -> None:
    store = make_store(max_priority_skip_s=2.0)
    first = store.submit(req(model="other")).job.id
    mine = store.submit(req(model="tiny")).job.id
    assert [c.id for c in store.claim("w1", loaded_model="tiny")] == [mine]
    assert [c.id for c in store.claim("w2", loaded_model="tiny")] == [first]
    late_other = store.submit(req(model="other")).job.id
    late_mine = store.submit(req(model="tiny")).job.id
    clock.advance(2.5)
    # The other model's job waited past the window: no more skipping it.
    assert [c.id for c in store.claim("w1", loaded_model="tiny")] == [late_other]
    assert [c.id for c in store.claim("w1", loaded_model="tiny")] == [late_mine]
