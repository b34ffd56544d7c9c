"""Event hub and job following (the SSE source), with a real SQLite store standing in for another gateway."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from ablerefusal.gateway.events import (
    EventHub,
    JobEvent,
    JobImage,
    JobProgress,
    JobStatusChange,
    Subscription,
    follow_job,
)
from ablerefusal.gateway.jobs import JobNotFound, JobStore
from ablerefusal.gateway.schemas import GenerateRequest, Job, JobStatus


def make_store(tmp_path: Path) -> JobStore:
    return JobStore(f"sqlite:///{tmp_path}/jobs.db")


def request() -> GenerateRequest:
    return GenerateRequest(prompt="x", width=64, height=64, steps=4, model="tiny", batch_size=2)


async def test_slow_subscriber_loses_progress_never_status() -> None:
    hub = EventHub(maxsize=3)
    sub = hub.subscribe("j")
    for step in range(10):
        hub.publish(JobProgress(job_id="j", step=step, total=10, progress=step * 10))
    hub.publish(JobProgress(job_id="other", step=1, total=1, progress=100))
    assert sub.dropped == 7
    assert [e.step for e in [await sub.get(0), await sub.get(0), await sub.get(0)] if isinstance(e, JobProgress)] == [
        7,
        8,
        9,
    ]
    assert await sub.get(timeout=0) is None
    sub.close()
    assert hub.subscribers("j") == 0


async def test_follow_job_polls_changes_made_elsewhere(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    hub = EventHub()
    job_id = store.submit(request()).job.id
    events = follow_job(hub, job_id, store, poll_interval_s=0.02)
    first = await anext(events)
    assert isinstance(first, JobStatusChange) and first.status == JobStatus.queued and not first.terminal

    # "Another gateway" runs the job: nothing is published on this hub, only the store changes.
    [claim] = await asyncio.to_thread(store.claim, "w")
    assert isinstance(await anext(events), JobStatusChange)
    await asyncio.to_thread(store.record_progress, [claim], 2, 4)
    progress = await anext(events)
    assert isinstance(progress, JobProgress) and (progress.step, progress.total) == (2, 4)
    await asyncio.to_thread(store.add_result, job_id, 0, f"{job_id}/0.png", 1, {}, "", attempt=claim.attempt)
    await asyncio.to_thread(store.add_result, job_id, 1, f"{job_id}/1.png", 2, {}, "", attempt=claim.attempt)
    await asyncio.to_thread(store.complete, job_id, attempt=claim.attempt)
    rest = [e async for e in events]
    assert sorted(e.result.index for e in rest if isinstance(e, JobImage)) == [0, 1]
    last = rest[-1]
    assert isinstance(last, JobStatusChange) and last.terminal and last.job.status == JobStatus.completed
    store.close()


async def test_follow_job_prefers_hub_and_does_not_repeat(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    hub = EventHub()
    job_id = store.submit(request()).job.id
    [claim] = store.claim("w")
    events = follow_job(hub, job_id, store, poll_interval_s=30)
    assert (await anext(events)).type == "status"
    store.record_progress([claim], 1, 4)
    hub.publish(JobProgress(job_id=job_id, step=1, total=4, progress=25))
    hub.publish(JobProgress(job_id=job_id, step=1, total=4, progress=25))
    store.add_result(job_id, 0, f"{job_id}/0.png", 1, {}, "", attempt=claim.attempt)
    result = store.get(job_id).results[0]
    hub.publish(JobImage(job_id=job_id, result=result))
    hub.publish(JobImage(job_id=job_id, result=result))
    store.time_out(job_id)
    hub.publish(JobStatusChange.of(store.get(job_id)))
    rest = [e async for e in events]
    assert [e.type for e in rest] == ["progress", "image", "status"]
    assert isinstance(rest[-1], JobStatusChange) and rest[-1].status == JobStatus.timed_out
    assert hub.subscribers(job_id) == 0
    store.close()


async def test_follow_job_of_finished_and_unknown_jobs(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    hub = EventHub()
    job_id = store.submit(request()).job.id
    store.cancel(job_id)
    events = [e async for e in follow_job(hub, job_id, store)]
    assert len(events) == 1 and isinstance(events[0], JobStatusChange) and events[0].terminal
    with pytest.raises(JobNotFound):
        await anext(follow_job(hub, "missing", store))
    assert hub.subscribers("missing") == 0
    store.close()


async def test_only_subscribers_that_want_previews_make_a_job_watched() -> None:
    hub = EventHub()
    quiet = hub.subscribe("job-1", previews=False)
    assert hub.subscribers("job-1") == 1
    assert not hub.wants_previews("job-1")  # a synchronous waiter: the worker need not render previews
    live = hub.subscribe("job-1")
    assert hub.wants_previews("job-1")
    live.close()
    assert not hub.wants_previews("job-1")
    quiet.close()
    assert hub.subscribers("job-1") == 0


async def test_a_stale_store_read_never_moves_progress_backwards(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    hub = EventHub()
    job_id = store.submit(request()).job.id
    [claim] = store.claim("w")
    reads = 0

    def load(jid: str) -> Job:
        nonlocal reads
        reads += 1
        return store.get(jid)

    events = follow_job(hub, job_id, load, poll_interval_s=0.01)
    assert (await anext(events)).type == "status"
    # The hub has step 3 live; the store still holds step 1 (progress writes are throttled).
    hub.publish(JobProgress(job_id=job_id, step=3, total=4, progress=75))
    store.record_progress([claim], 1, 4)
    seen = [await anext(events)]
    # The follower reads the stale row at least twice while it waits for the next event...
    polled = reads
    following = asyncio.ensure_future(anext(events))
    while reads < polled + 2 and not following.done():
        await asyncio.sleep(0.01)
    # ...and the next thing it gives is the hub's step 4, not the store's step 1.
    hub.publish(JobProgress(job_id=job_id, step=4, total=4, progress=100))
    seen.append(await following)
    store.time_out(job_id)
    hub.publish(JobStatusChange.of(store.get(job_id)))
    seen += [e async for e in events]
    steps = [e.step for e in seen if isinstance(e, JobProgress)]
    assert steps == sorted(set(steps)) and steps[-1] == 4, steps
    store.close()


class _BrokenSubscription(Subscription):
    """A subscriber with a bug (standing in for any failure inside one subscriber's queue)."""

    def _offer(self, event: JobEvent) -> None:
        raise RuntimeError("subscriber bug")


async def test_a_failing_subscriber_is_logged_and_does_not_starve_the_others(caplog: pytest.LogCaptureFixture) -> None:
    hub = EventHub()
    broken = _BrokenSubscription(hub, "job-1", maxsize=8)
    hub._subs.setdefault("job-1", set()).add(broken)
    healthy = hub.subscribe("job-1")
    with caplog.at_level(logging.ERROR, logger="ablerefusal.gateway.events"):
        hub.publish(JobProgress(job_id="job-1", step=1, total=4, progress=25))
    received = await healthy.get(timeout=0)
    assert isinstance(received, JobProgress) and received.step == 1
    assert any("fan-out" in r.getMessage() and "job-1" in r.getMessage() for r in caplog.records)
    broken.close()
    healthy.close()
