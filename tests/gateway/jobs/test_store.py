"""Job store behaviour on SQLite and PostgreSQL: submit rules, run order, state-machine guards, leases,
retries with backoff, results, listing and deletion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from store_helpers import FakeClock, req

from ablerefusal.gateway.jobs import IdempotencyConflict, JobNotFinished, JobNotFound, JobStore, QueueFull
from ablerefusal.gateway.jobs.store import Preview
from ablerefusal.gateway.schemas import JobError, JobStatus
from ablerefusal.protocol import SEED_MAX


def claim_one(store: JobStore, worker: str = "w") -> str:
    claimed = store.claim(worker)
    assert len(claimed) == 1
    return claimed[0].id


def test_submit_resolves_seed_deadline_and_position(make_store: Callable[..., JobStore], clock: FakeClock) -> None:
    store = make_store(default_timeout_s=60)
    first = store.submit(req(seed=-1, batch_size=4))
    assert first.created
    job = first.job
    assert job.status == JobStatus.queued and job.queue_position == 1
    assert 0 <= job.request.seed <= SEED_MAX - 3  # all four images' seeds stay valid
    assert job.deadline_at is not None and job.deadline_at.timestamp() == pytest.approx(clock.now + 60)
    lowered = store.submit(req(timeout_s=5)).job
    assert lowered.deadline_at is not None and lowered.deadline_at.timestamp() == pytest.approx(clock.now + 5)
    assert lowered.queue_position == 2
    assert store.submit(req(seed=7)).job.request.seed == 7


def test_priority_then_fifo(store: JobStore) -> None:
    low = store.submit(req(priority=-1)).job.id
    a = store.submit(req()).job.id
    b = store.submit(req()).job.id
    high = store.submit(req(priority=5)).job.id
    queued = [j.id for j in store.queue_status().queued]
    assert queued == [high, a, b, low]
    assert [j.queue_position for j in store.queue_status().queued] == [1, 2, 3, 4]
    assert store.get(low).queue_position == 4
    assert [claim_one(store) for _ in range(4)] == [high, a, b, low]
    assert store.claim("w") == []


def test_submit_answer_is_what_a_read_returns(store: JobStore) -> None:
    # submit builds its answer from the inserted row and one count instead of reading the job back.
    for priority in (0, 0, 3, -2, 3, 0):
        answered = store.submit(req(priority=priority)).job
        assert answered.queue_position == store.get(answered.id).queue_position
        assert answered == store.get(answered.id).model_copy(update={"queue_position": answered.queue_position})
    assert [j.queue_position for j in store.queue_status().queued] == [1, 2, 3, 4, 5, 6]


def test_claim_snapshot_is_the_running_job(store: JobStore, clock: FakeClock) -> None:
    job_id = store.submit(req(batch_size=2)).job.id
    first = store.claim("w")[0]
    assert first.job == store.get(job_id) and first.job.status == JobStatus.running and first.job.attempts == 1
    store.add_result(job_id, 0, f"{job_id}/0.png", 10, {}, "a", attempt=first.attempt)
    store.retry(job_id, JobError(code="worker_unreachable", message="gone"), attempt=first.attempt)
    clock.advance(120)
    second = store.claim("w2")[0]
    # The retry's snapshot carries the image the first attempt recorded, as a read would.
    assert second.job == store.get(job_id)
    assert second.job.worker_id == "w2" and [r.index for r in second.job.results] == [0]


def test_idempotency_key(store: JobStore) -> None:
    first = store.submit(req(prompt="x"), idempotency_key="k1")
    again = store.submit(req(prompt="x"), idempotency_key="k1")
    assert again.job.id == first.job.id and not again.created
    with pytest.raises(IdempotencyConflict) as info:
        store.submit(req(prompt="y"), idempotency_key="k1")
    assert info.value.job_id == first.job.id
    other = store.submit(req(prompt="x"), idempotency_key="k2")
    assert other.created and other.job.id != first.job.id
    assert store.counts().queued == 2


def test_queue_full(make_store: Callable[..., JobStore]) -> None:
    store = make_store(max_queue_length=2, retry_after_s=7)
    store.submit(req())
    store.submit(req(), idempotency_key="same")
    with pytest.raises(QueueFull) as info:
        store.submit(req())
    assert info.value.retry_after == 7 and info.value.max_queue_length == 2
    # A replay of an accepted key still answers even with a full queue.
    assert not store.submit(req(), idempotency_key="same").created
    claim_one(store)
    assert store.submit(req()).created


def test_terminal_states_never_change(store: JobStore) -> None:
    job_id = store.submit(req()).job.id
    claimed = store.claim("w")[0]
    assert store.complete(job_id, attempt=claimed.attempt) is not None
    err = JobError(code="internal", message="boom")
    assert store.fail(job_id, err) is None
    assert store.time_out(job_id) is None
    assert store.mark_cancelled(job_id) is None
    assert store.retry(job_id, err) is None
    assert store.release(job_id) is None
    assert store.cancel(job_id).status == JobStatus.completed
    assert store.record_progress([claimed], 1, 2) == set()
    assert store.add_result(job_id, 0, "x/0.png", 1, {}, "") is None
    final = store.get(job_id)
    assert final.status == JobStatus.completed and final.error is None and final.progress == 100


def test_stale_attempt_is_fenced_off(store: JobStore, clock: FakeClock) -> None:
    job_id = store.submit(req()).job.id
    old = store.claim("w1")[0]
    clock.advance(store.settings.lease_s + 1)
    assert store.requeue_expired_leases() == [job_id]
    clock.advance(store.settings.backoff_max_s + 1)
    new = store.claim("w2")[0]
    assert new.attempt == old.attempt + 1
    assert store.complete(job_id, attempt=old.attempt) is None
    assert store.renew_leases([old]) == set()
    assert store.renew_leases([new]) == {job_id}
    assert store.complete(job_id, attempt=new.attempt) is not None


def test_cancel_queued_and_running(store: JobStore) -> None:
    queued = store.submit(req()).job.id
    running = store.submit(req(priority=1)).job.id
    claimed = store.claim("w")
    assert [c.id for c in claimed] == [running]
    assert store.cancel(queued).status == JobStatus.cancelled
    assert store.cancel(running).status == JobStatus.running
    assert store.record_progress(claimed, 1, 2) == {running}
    assert store.cancel_requested(claimed) == {running}
    done = store.mark_cancelled(running, attempt=claimed[0].attempt)
    assert done is not None and done.status == JobStatus.cancelled and done.error is not None
    with pytest.raises(JobNotFound):
        store.cancel("no-such-job")


def test_expired_lease_requeues_or_ends(store: JobStore, clock: FakeClock) -> None:
    plain = store.submit(req(priority=2)).job.id
    wants_cancel = store.submit(req(priority=1)).job.id
    past_deadline = store.submit(req(timeout_s=5)).job.id
    assert {c.id for c in store.claim("w", max_images=3, coalesce=True)} == {plain, wants_cancel, past_deadline}
    store.cancel(wants_cancel)
    clock.advance(store.settings.lease_s / 2)
    assert store.requeue_expired_leases() == []
    clock.advance(store.settings.lease_s)
    assert set(store.requeue_expired_leases()) == {plain, wants_cancel, past_deadline}
    requeued = store.get(plain)
    assert requeued.status == JobStatus.queued and requeued.attempts == 1
    assert requeued.error is not None and requeued.error.code == "worker_unreachable"
    assert store.get(wants_cancel).status == JobStatus.cancelled
    assert store.get(past_deadline).status == JobStatus.timed_out


def test_retry_backoff_then_fail(make_store: Callable[..., JobStore], clock: FakeClock) -> None:
    store = make_store(max_attempts=3, backoff_base_s=10, backoff_max_s=15)
    job_id = store.submit(req()).job.id
    oom = JobError(code="out_of_memory", message="CUDA out of memory")
    first = store.claim("w")[0]
    assert not first.memory_saving
    after = store.retry(job_id, oom, attempt=first.attempt, memory_saving=True)
    assert after is not None and after.status == JobStatus.queued
    # Backoff with jitter: between half and all of base * 2**0.
    clock.advance(4.9)
    assert store.claim("w") == [] and not store.has_claimable()
    clock.advance(5.2)
    second = store.claim("w")[0]
    assert second.attempt == 2 and second.memory_saving
    store.retry(job_id, oom, attempt=second.attempt)
    clock.advance(7.4)  # second delay is base*2 = 20, capped at 15, jittered into [7.5, 15]
    assert store.claim("w") == []
    clock.advance(7.7)
    third = store.claim("w")[0]
    assert third.attempt == 3 and third.memory_saving
    final = store.retry(job_id, oom, attempt=third.attempt)
    assert final is not None and final.status == JobStatus.failed
    assert final.error is not None and final.error.code == "out_of_memory" and "3 attempts" in final.error.message


def test_release_does_not_count_an_attempt(store: JobStore) -> None:
    job_id = store.submit(req()).job.id
    claimed = store.claim("w")[0]
    released = store.release(job_id, attempt=claimed.attempt)
    assert released is not None and released.status == JobStatus.queued and released.attempts == 0
    assert store.claim("w")[0].attempt == 1


def test_deadlines_keep_partial_results(store: JobStore, clock: FakeClock) -> None:
    waiting = store.submit(req(timeout_s=10)).job.id
    running = store.submit(req(timeout_s=10, priority=1, batch_size=2)).job.id
    claimed = store.claim("w")[0]
    assert store.add_result(running, 0, f"{running}/0.png", 5, {"k": 1}, "text", attempt=claimed.attempt)
    clock.advance(11)
    assert store.claim("w") == []
    assert store.expire_deadlines() == [waiting]
    assert store.get(waiting).status == JobStatus.timed_out
    timed = store.time_out(running, attempt=claimed.attempt)
    assert timed is not None and timed.status == JobStatus.timed_out
    assert [r.image_url for r in timed.results] == [f"/outputs/{running}/0.png"]
    assert timed.error is not None and timed.error.code == "timeout"


def test_results_are_upserted_per_index(store: JobStore) -> None:
    job_id = store.submit(req(batch_size=2)).job.id
    claimed = store.claim("w")[0]
    store.add_result(job_id, 1, f"{job_id}/1.png", 11, {"try": 1}, "a", attempt=claimed.attempt)
    store.add_result(job_id, 0, f"{job_id}/0.png", 10, {}, "b", attempt=claimed.attempt)
    store.add_result(job_id, 1, f"{job_id}/1.png", 11, {"try": 2}, "c", attempt=claimed.attempt)
    results = store.get(job_id).results
    assert [(r.index, r.seed, r.metadata, r.infotext) for r in results] == [
        (0, 10, {}, "b"),
        (1, 11, {"try": 2}, "c"),
    ]


def test_list_and_delete(store: JobStore) -> None:
    ids = [store.submit(req(prompt=f"p{i}")).job.id for i in range(5)]
    claimed = store.claim("w")[0]
    store.add_result(claimed.id, 0, f"{claimed.id}/0.png", 1, {}, "", attempt=claimed.attempt)
    store.complete(claimed.id, attempt=claimed.attempt)
    page = store.list_jobs(offset=1, limit=2)
    assert page.total == 5 and [j.id for j in page.items] == [ids[3], ids[2]]
    done = store.list_jobs(status=JobStatus.completed)
    assert done.total == 1 and done.items[0].id == ids[0]
    queued = store.list_jobs(status=JobStatus.queued)
    assert queued.total == 4 and [j.queue_position for j in queued.items] == [4, 3, 2, 1]
    with pytest.raises(ValueError, match="limit"):
        store.list_jobs(limit=0)
    with pytest.raises(JobNotFinished):
        store.delete(ids[1])
    assert store.delete(ids[0]) == [f"{ids[0]}/0.png"]
    with pytest.raises(JobNotFound):
        store.get(ids[0])
    with pytest.raises(JobNotFound):
        store.delete(ids[0])
    assert store.counts().queued == 4 and store.counts().completed == 0


def test_progress_and_preview(store: JobStore) -> None:
    job_id = store.submit(req(steps=4)).job.id
    other = store.submit(req(steps=4)).job.id
    claimed = store.claim("w")
    store.record_progress(claimed, 1, 4, {job_id: "AAAA"})
    job = store.get(job_id)
    assert (job.step, job.total_steps, job.progress) == (1, 4, 25)
    assert job.worker_id == "w"
    # Job reads carry the preview's URL, never the image: it lives in its own table.
    assert job.preview is None and job.preview_url == f"/api/v1/generate/{job_id}/preview"
    assert store.preview(job_id) == Preview(step=1, jpeg_base64="AAAA")
    store.record_progress(claimed, 3, 4, {job_id: "BBBB"})
    assert store.preview(job_id) == Preview(step=3, jpeg_base64="BBBB")
    assert "BBBB" not in store.queue_status().model_dump_json()
    assert store.queue_status().running[0].preview_url == job.preview_url
    # A preview for a job this call does not hold is not stored.
    store.record_progress(claimed, 3, 4, {other: "CCCC"})
    assert store.preview(other) is None and store.get(other).preview_url is None
    store.complete(job_id, attempt=claimed[0].attempt)
    assert store.get(job_id).preview_url is None and store.preview(job_id) is None


def test_queue_positions_of_a_page_follow_run_order(store: JobStore) -> None:
    low = store.submit(req(priority=-1)).job.id
    first = store.submit(req()).job.id
    high = store.submit(req(priority=5)).job.id
    second = store.submit(req()).job.id
    claim_one(store)  # takes `high`
    positions = {j.id: j.queue_position for j in store.list_jobs().items}
    assert positions == {high: None, first: 1, second: 2, low: 3}
    assert store.get(low).queue_position == 3
    assert [(j.id, j.queue_position) for j in store.queue_status().queued] == [(first, 1), (second, 2), (low, 3)]
    # One query for the positions of a whole page, not one per queued job: as many statements for a page
    # of three queued jobs as for a page of six.
    assert _selects(store) == _selects(store, more_queued=3)


def _selects(store: JobStore, *, more_queued: int = 0) -> int:
    for i in range(more_queued):
        store.submit(req(prompt=f"more {i}"))
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        store.list_jobs()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    return len([q for q in statements if q.lstrip().upper().startswith("SELECT")])


def test_store_survives_reopen(backend: dict[str, Any], clock: FakeClock) -> None:
    first = JobStore(backend["url"], schema=backend["schema"], clock=clock)
    job_id = first.submit(req()).job.id
    first.close()
    second = JobStore(backend["url"], schema=backend["schema"], clock=clock)
    assert second.get(job_id).status == JobStatus.queued
    second.close()
