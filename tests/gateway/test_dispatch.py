"""Dispatcher and worker client against a real worker process serving a tiny random-weight model.

One worker process for the module, on the session's tiny models (tests/conftest.py); every test has
its own SQLite store and output folder.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ablerefusal.gateway.dispatch import MEMORY_SAVING, Dispatcher, _Call, item_seeds
from ablerefusal.gateway.events import EventHub, JobImage, JobProgress, JobStatusChange, follow_job
from ablerefusal.gateway.jobs import ClaimedJob, JobStore
from ablerefusal.gateway.schemas import TERMINAL_STATUSES, GenerateRequest, Job, JobStatus
from ablerefusal.gateway.settings import Settings
from ablerefusal.gateway.workers.client import WorkerClient, WorkerError, WorkerUnreachable
from ablerefusal.protocol import SEED_MAX, ErrorCode, ErrorEvent, GenerateCall, GenerateItem, ImageEvent
from procs import free_port, worker_proc

MODEL = "tiny-sd15"
WAIT_S = 180.0


@pytest.fixture(scope="module")
def worker_url(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real worker process (CPU) serving the session's tiny models."""
    with worker_proc(tiny_models_dir, tmp_path_factory.mktemp("worker") / "worker.log") as proc:
        proc.start(timeout=WAIT_S)
        yield proc.url


@dataclass
class Handle:
    """A worker as the pool would hand it over."""

    id: str
    url: str
    ready: bool = True
    busy: bool = False
    info: Any = None


def req(**kw: Any) -> GenerateRequest:
    base: dict[str, Any] = {"prompt": "a red cube", "width": 64, "height": 64, "steps": 2, "model": MODEL}
    return GenerateRequest(**{**base, **kw})


class Rig:
    """Store + dispatcher + one worker handle, in a temp folder."""

    def __init__(self, tmp: Path, url: str, **queue: Any) -> None:
        queue.setdefault("gather_window_ms", 0)
        settings = Settings.model_validate({"queue": queue, "inference": {"max_batch_size": 4}})
        self.output_dir = tmp / "outputs"
        self.store = JobStore(f"sqlite:///{tmp}/{uuid.uuid4().hex}.db", settings.queue)
        self.hub = EventHub()
        self.finished: list[Job] = []
        self.handle = Handle(id="w0", url=url)
        self.dispatcher = Dispatcher(
            self.store, settings, self.output_dir, self.hub, [self.handle], on_finished=self.finished.append
        )

    def submit(self, request: GenerateRequest) -> str:
        return self.store.submit(request).job.id

    async def wait(self, job_ids: list[str], until: frozenset[JobStatus] = TERMINAL_STATUSES) -> list[Job]:
        deadline = time.monotonic() + WAIT_S
        while True:
            jobs = [await asyncio.to_thread(self.store.get, i) for i in job_ids]
            if all(j.status in until for j in jobs):
                return jobs
            assert time.monotonic() < deadline, f"jobs stuck: {[(j.id, j.status) for j in jobs]}"
            await asyncio.sleep(0.05)

    def pixels(self, job: Job) -> list[np.ndarray]:
        return [
            np.asarray(Image.open(self.output_dir / r.image_url.removeprefix("/outputs/")).convert("RGB"), np.int16)
            for r in job.results
        ]


async def wait_idle(url: str) -> None:
    """Let the worker finish a call a test cancelled, so the next test starts on an idle worker."""
    client = WorkerClient(url)
    deadline = time.monotonic() + WAIT_S
    try:
        while (await client.info()).busy:
            assert time.monotonic() < deadline, "worker stayed busy"
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()


@pytest.fixture
async def rig_factory(tmp_path: Path, worker_url: str) -> AsyncIterator[Any]:
    rigs: list[Rig] = []

    def make(**queue: Any) -> Rig:
        rig = Rig(tmp_path / f"rig{len(rigs)}", worker_url, **queue)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        await rig.dispatcher.stop()
        rig.store.close()
    await wait_idle(worker_url)


def _batch_requests() -> list[GenerateRequest]:
    return [
        req(prompt="a dog", seed=SEED_MAX, batch_size=2),  # wraps to seed 0 for the second image
        req(prompt="a fox", seed=5, negative_prompt="blur"),
    ]


async def test_coalesced_jobs_match_jobs_run_alone(rig_factory: Any) -> None:
    alone = rig_factory(coalesce=False)
    alone_ids = [alone.submit(r) for r in _batch_requests()]
    await alone.dispatcher.start()
    solo = await alone.wait(alone_ids)
    assert [j.status for j in solo] == [JobStatus.completed] * 2
    assert len({j.started_at for j in solo}) == 2  # separate calls

    together = rig_factory(coalesce=True)
    ids = [together.submit(r) for r in _batch_requests()]
    subs = {i: together.hub.subscribe(i) for i in ids}
    await together.dispatcher.start()
    batched = await together.wait(ids)
    assert [j.status for j in batched] == [JobStatus.completed] * 2
    assert len({j.started_at for j in batched}) == 1  # claimed together: one call
    assert [[r.seed for r in j.results] for j in batched] == [[SEED_MAX, 0], [5]]
    for one, many in zip(solo, batched, strict=True):
        for a, b in zip(alone.pixels(one), together.pixels(many), strict=True):
            # The worker makes CPU batches batch-invariant (engine/determinism.py): pixel for pixel.
            assert np.array_equal(a, b)
    # Subscribers saw progress, each image and the terminal status.
    for job in batched:
        events = []
        while (event := await subs[job.id].get(timeout=0)) is not None:
            events.append(event)
        assert any(isinstance(e, JobProgress) for e in events)
        assert sorted(e.result.index for e in events if isinstance(e, JobImage)) == list(range(job.request.batch_size))
        assert isinstance(events[-1], JobStatusChange) and events[-1].status == JobStatus.completed
    assert {j.id for j in together.finished} == set(ids)


async def test_cancel_inside_a_batch_leaves_the_others(rig_factory: Any) -> None:
    rig = rig_factory(coalesce=True)
    ids = [rig.submit(req(prompt=f"p{i}", seed=i, steps=8)) for i in range(3)]
    await rig.dispatcher.start()
    # Wait for the call to be generating before cancelling the middle job.
    follower = follow_job(rig.hub, ids[1], rig.store, poll_interval_s=0.05)
    async for event in follower:
        if isinstance(event, JobProgress) and event.step >= 1:
            break
    await follower.aclose()
    cancelled = await rig.dispatcher.cancel(ids[1])
    assert cancelled.status == JobStatus.cancelled
    jobs = await rig.wait(ids)
    assert [j.status for j in jobs] == [JobStatus.completed, JobStatus.cancelled, JobStatus.completed]
    assert len({j.started_at for j in jobs}) == 1
    assert jobs[1].results == [] and not (rig.output_dir / ids[1]).exists()
    assert jobs[1].step < 8  # stopped before the end
    assert [len(j.results) for j in (jobs[0], jobs[2])] == [1, 1]


async def test_priority_respected_with_coalescing(rig_factory: Any) -> None:
    rig = rig_factory(coalesce=True)
    low = [rig.submit(req(prompt=f"low{i}")) for i in range(2)]
    high = rig.submit(req(prompt="high", width=128, priority=5))
    mid = rig.submit(req(prompt="mid", width=96, priority=1))
    await rig.dispatcher.start()
    jobs = {j.id: j for j in await rig.wait([*low, high, mid])}
    assert all(j.status == JobStatus.completed for j in jobs.values())
    started = sorted(jobs.values(), key=lambda j: (j.started_at, j.priority * -1))
    assert [j.id for j in started][:2] == [high, mid]
    assert jobs[low[0]].started_at == jobs[low[1]].started_at  # the two compatible ones went together


async def test_deadline_times_out_running_job(rig_factory: Any) -> None:
    rig = rig_factory(coalesce=True)
    slow = rig.submit(req(steps=150, timeout_s=1.0, batch_size=4))
    await rig.dispatcher.start()
    [job] = await rig.wait([slow])
    assert job.status == JobStatus.timed_out and job.error is not None and job.error.code == "timeout"
    assert job.attempts == 1 and job.step < 150


async def test_unknown_model_fails_without_retry(rig_factory: Any) -> None:
    rig = rig_factory()
    job_id = rig.submit(req(model="no-such-model"))
    await rig.dispatcher.start()
    [job] = await rig.wait([job_id])
    assert job.status == JobStatus.failed and job.attempts == 1
    assert job.error is not None and job.error.code == ErrorCode.model_not_found


async def test_unreachable_worker_retries_then_fails(tmp_path: Path) -> None:
    rig = Rig(tmp_path, f"http://127.0.0.1:{free_port()}", max_attempts=2, backoff_base_s=0.05, backoff_max_s=0.1)
    job_id = rig.submit(req())
    await rig.dispatcher.start()
    try:
        [job] = await rig.wait([job_id])
    finally:
        await rig.dispatcher.stop()
        rig.store.close()
    assert job.status == JobStatus.failed and job.attempts == 2
    assert job.error is not None and job.error.code == "worker_unreachable"


def test_call_building_seeds_and_memory_options(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "http://127.0.0.1:1")
    claims = [
        ClaimedJob(id="a", attempt=1, request=req(seed=SEED_MAX - 1, batch_size=3), deadline_at=0, memory_saving=False),
        ClaimedJob(id="b", attempt=2, request=req(prompt="b", seed=4), deadline_at=0, memory_saving=True),
    ]
    call = _Call(rig.dispatcher, rig.handle, WorkerClient(rig.handle.url), claims).build(MODEL)
    assert [i.seeds for i in call.items] == [[SEED_MAX - 1, SEED_MAX, 0], [4]]
    assert call.memory == MEMORY_SAVING and call.model == MODEL and not call.previews
    assert item_seeds(7, 2) == [7, 8]
    rig.store.close()


async def test_a_job_that_ends_right_after_an_image_keeps_it(tmp_path: Path) -> None:
    # Images are written beside the stream; the item's error, read at once, must wait for that write.
    rig = Rig(tmp_path, "http://127.0.0.1:1")
    job_id = rig.submit(req(batch_size=2))
    [claim] = rig.store.claim("w0")
    call = _Call(rig.dispatcher, rig.handle, WorkerClient(rig.handle.url), [claim])
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format="PNG")
    png = base64.b64encode(buffer.getvalue()).decode()
    image = ImageEvent(call_id=call.call_id, job_id=job_id, index=0, seed=7, png_base64=png, infotext="x")
    await call._on_event(image, MODEL)
    failure = ErrorEvent(call_id=call.call_id, job_id=job_id, code=ErrorCode.internal, message="boom")
    await call._on_event(failure, MODEL)
    job = rig.store.get(job_id)
    assert job.status == JobStatus.failed and [r.index for r in job.results] == [0]
    assert [p.tolist() for p in rig.pixels(job)] == [np.full((8, 8, 3), (200, 10, 10)).tolist()]
    rig.store.close()


async def test_worker_client_against_real_worker(worker_url: str) -> None:
    await wait_idle(worker_url)
    client = WorkerClient(worker_url)
    try:
        assert await client.health() and await client.ready()
        info = await client.info()
        assert info.device == "cpu"
        assert MODEL in [m.id for m in (await client.models()).models]
        assert await client.cancel("no-such-call") is False
        call = GenerateCall(
            call_id="c1",
            model=MODEL,
            width=64,
            height=64,
            steps=2,
            items=[GenerateItem(job_id="j", prompt="x", seeds=[1])],
        )
        kinds = [event.type async for event in client.generate(call)]
        assert kinds[0] == "started" and kinds[-1] == "done" and "image" in kinds
        bad = call.model_copy(update={"model": "missing"})
        with pytest.raises(WorkerError) as info_err:
            _ = [e async for e in client.generate(bad)]
        assert info_err.value.code == ErrorCode.model_not_found and not info_err.value.retryable
    finally:
        await client.aclose()
    dead = WorkerClient(f"http://127.0.0.1:{free_port()}")
    assert await dead.health() is False
    with pytest.raises(WorkerUnreachable) as unreachable:
        await dead.info()
    assert unreachable.value.retryable and unreachable.value.code == "worker_unreachable"
    await dead.aclose()


async def test_busy_worker_does_not_use_up_attempts(rig_factory: Any, worker_url: str) -> None:
    # Another gateway's call occupies the worker; with one attempt allowed, counting "busy" as a
    # failed attempt would fail the job.
    other = WorkerClient(worker_url)
    call = GenerateCall(
        call_id="other-gateway",
        model=MODEL,
        width=64,
        height=64,
        steps=6,
        items=[GenerateItem(job_id="theirs", prompt="x", seeds=[1])],
    )
    stream = other.generate(call)
    assert (await anext(stream)).type == "started"

    async def drain() -> list[str]:
        return [event.type async for event in stream]

    draining = asyncio.ensure_future(drain())
    rig = rig_factory(max_attempts=1)
    job_id = rig.submit(req())
    await rig.dispatcher.start()
    [job] = await rig.wait([job_id])
    assert (await draining)[-1] == "done"
    await other.aclose()
    assert job.status == JobStatus.completed and job.attempts == 1


async def test_leases_are_renewed_while_a_call_runs(rig_factory: Any) -> None:
    # 150 CPU steps outlast a 2 s lease several times over; the dispatcher's own housekeeping would
    # requeue the job (attempt 2) if renewals stopped.
    rig = rig_factory(lease_s=2.0)
    job_id = rig.submit(req(steps=150))
    await rig.dispatcher.start()
    [job] = await rig.wait([job_id])
    assert job.status == JobStatus.completed and job.attempts == 1
