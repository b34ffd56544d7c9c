"""Dispatcher and worker client against a real worker process serving a tiny random-weight model.

One worker process for the module, on the session's tiny models (tests/conftest.py); every test has
its own SQLite store and output folder.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from ablerefusal.gateway.dispatch import MEMORY_SAVING, Call, Dispatcher, WorkerSlot, item_seeds
from ablerefusal.gateway.dispatch.call import PROGRESS_WRITE_S
from ablerefusal.gateway.events import EventHub, JobImage, JobProgress, JobStatusChange, follow_job
from ablerefusal.gateway.jobs import ClaimedJob, JobStore
from ablerefusal.gateway.jobs.tables import jobs as jobs_table
from ablerefusal.gateway.schemas import TERMINAL_STATUSES, GenerateRequest, Job, JobStatus
from ablerefusal.gateway.settings import Settings
from ablerefusal.gateway.storage.local import LocalObjectStore
from ablerefusal.gateway.workers.client import WorkerClient, WorkerError, WorkerUnreachable
from ablerefusal.protocol import (
    SEED_MAX,
    ErrorCode,
    ErrorEvent,
    GenerateCall,
    GenerateItem,
    ImageEvent,
    ModelInfo,
    ProgressEvent,
)
from holds import Hold
from procs import free_port, worker_proc

MODEL = "tiny-sd15"
WAIT_S = 180.0


@pytest.fixture(scope="module")
def hold_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("holds")


@pytest.fixture
def hold(hold_dir: Path) -> Iterator[Hold]:
    with Hold(hold_dir) as held:
        yield held


@pytest.fixture(scope="module")
def worker_url(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory, hold_dir: Path) -> Iterator[str]:
    """A real worker process (CPU) serving the session's tiny models; it honours test holds."""
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    with worker_proc(tiny_models_dir, log_path, env=Hold(hold_dir).env) as proc:
        proc.start(timeout=WAIT_S)
        yield proc.url


@dataclass
class Handle:
    """A worker as the pool would hand it over."""

    id: str
    url: str
    token: str | None = None
    ready: bool = True
    busy: bool = False
    info: Any = None
    models: list[ModelInfo] = field(default_factory=list)


def req(**kw: Any) -> GenerateRequest:
    base: dict[str, Any] = {"prompt": "a red cube", "width": 64, "height": 64, "steps": 2, "model": MODEL}
    return GenerateRequest(**{**base, **kw})


class Rig:
    """Store + dispatcher + one worker handle, in a temp folder."""

    def __init__(self, tmp: Path, url: str, *, store: JobStore | None = None, **queue: Any) -> None:
        queue.setdefault("gather_window_ms", 0)
        settings = Settings.model_validate({"queue": queue, "inference": {"max_batch_size": 4}})
        self.output_dir = tmp / "outputs"
        self.store = store or JobStore(f"sqlite:///{tmp}/{uuid.uuid4().hex}.db", settings.queue)
        self.hub = EventHub()
        self.finished: list[Job] = []
        self.lost: list[str] = []
        self.handle = Handle(id="w0", url=url)
        self.dispatcher = Dispatcher(
            self.store,
            settings,
            LocalObjectStore(self.output_dir),
            self.hub,
            [self.handle],
            on_finished=self.finished.append,
            on_worker_lost=self._lost,
        )

    def _lost(self, worker: Any, reason: str) -> None:
        # What the pool does (WorkerPool.mark_lost): out of rotation until a probe finds it ready.
        worker.ready = False
        self.lost.append(reason)

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


def _mixed_cfg_requests() -> list[GenerateRequest]:
    # Same model, size, steps and sampler; CFG scale, negative prompt and batch size differ.
    return [
        req(prompt="a dog", seed=11, batch_size=2, cfg_scale=7.5),
        req(prompt="a fox", seed=5, negative_prompt="blur", cfg_scale=5.0),
        req(prompt="an owl", seed=8, cfg_scale=9.25),
    ]


async def test_jobs_differing_in_cfg_scale_share_a_call_and_match_jobs_run_alone(
    rig_factory: Any, worker_url: str
) -> None:
    alone = rig_factory(coalesce=False)
    alone_ids = [alone.submit(r) for r in _mixed_cfg_requests()]
    await alone.dispatcher.start()
    solo = await alone.wait(alone_ids)
    assert [j.status for j in solo] == [JobStatus.completed] * 3

    # The worker says it applies guidance per image; the pool would have read this from /v1/info.
    client = WorkerClient(worker_url)
    try:
        info = await client.info()
    finally:
        await client.aclose()
    assert info.per_item_cfg
    together = rig_factory(coalesce=True)
    together.handle.info = info
    ids = [together.submit(r) for r in _mixed_cfg_requests()]
    await together.dispatcher.start()
    batched = await together.wait(ids)
    assert [j.status for j in batched] == [JobStatus.completed] * 3
    assert len({j.started_at for j in batched}) == 1  # claimed together: one call
    for one, many in zip(solo, batched, strict=True):
        assert [r.metadata["cfg_scale"] for r in many.results] == [many.request.cfg_scale] * len(many.results)
        for a, b in zip(alone.pixels(one), together.pixels(many), strict=True):
            assert np.array_equal(a, b)

    # A worker that does not say so (an older version) gets one CFG scale per call.
    older = rig_factory(coalesce=True)
    ids = [older.submit(r) for r in _mixed_cfg_requests()]
    await older.dispatcher.start()
    jobs = await older.wait(ids)
    assert [j.status for j in jobs] == [JobStatus.completed] * 3
    assert len({j.started_at for j in jobs}) == 3


async def test_cancel_inside_a_batch_leaves_the_others(rig_factory: Any, hold: Hold) -> None:
    rig = rig_factory(coalesce=True)
    # The middle job holds the call after step 1 until it is dropped; its batch-mates then run to the end.
    prompts = ["p0", hold.prompt("p1"), "p2"]
    ids = [rig.submit(req(prompt=p, seed=i, steps=8)) for i, p in enumerate(prompts)]
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


async def test_deadline_times_out_running_job(rig_factory: Any, hold: Hold) -> None:
    rig = rig_factory(coalesce=True)
    # Held after step 1 until the deadline has passed, however fast the worker is.
    held = rig.submit(req(prompt=hold.prompt(), steps=20, timeout_s=1.0, batch_size=4))
    await rig.dispatcher.start()
    [job] = await rig.wait([held])
    assert job.status == JobStatus.timed_out and job.error is not None and job.error.code == "timeout"
    assert job.attempts == 1 and job.step < 20 and job.results == []


async def test_unknown_model_fails_without_retry(rig_factory: Any) -> None:
    rig = rig_factory()
    job_id = rig.submit(req(model="no-such-model"))
    await rig.dispatcher.start()
    [job] = await rig.wait([job_id])
    assert job.status == JobStatus.failed and job.attempts == 1
    assert job.error is not None and job.error.code == ErrorCode.model_not_found


async def test_a_call_that_never_reached_a_worker_spends_no_attempt(tmp_path: Path, worker_url: str) -> None:
    # A crashed worker's old port refuses the connection: nothing ran, so the job keeps its attempts
    # (one allowed here) and the worker leaves the rotation until it is ready again.
    rig = Rig(tmp_path, f"http://127.0.0.1:{free_port()}", max_attempts=1)
    job_id = rig.submit(req())
    await rig.dispatcher.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while not rig.lost:
            assert time.monotonic() < deadline, f"worker never reported lost: {rig.store.get(job_id)}"
            await asyncio.sleep(0.05)
        [queued] = await rig.wait([job_id], until=frozenset({JobStatus.queued}))
        assert queued.attempts == 0 and not rig.handle.ready
        [dead_client] = rig.dispatcher.slots["w0"].clients()
        # The worker is back on another port (as a restarted local worker would be) and a probe found it.
        rig.handle.url, rig.handle.ready = worker_url, True
        [job] = await rig.wait([job_id])
        assert job.status == JobStatus.completed and job.attempts == 1
        # The client for the old URL was closed once replaced.
        assert dead_client._http.is_closed
    finally:
        await rig.dispatcher.stop()
        rig.store.close()


async def test_a_worker_that_breaks_mid_call_leaves_rotation(
    tmp_path: Path, tiny_models_dir: Path, worker_url: str, hold: Hold
) -> None:
    # kill -9 during a call spends that attempt, and only that one: the retry waits for a ready worker
    # instead of going to the dead one's port (two attempts allowed, the second must succeed).
    with worker_proc(tiny_models_dir, tmp_path / "doomed.log", env=hold.env) as doomed:
        doomed.start(timeout=WAIT_S)
        rig = Rig(tmp_path, doomed.url, max_attempts=2, backoff_base_s=0.05, backoff_max_s=0.1)
        job_id = rig.submit(req(prompt=hold.prompt()))
        steps = rig.hub.subscribe(job_id)
        await rig.dispatcher.start()
        try:
            while not isinstance(event := await steps.get(timeout=WAIT_S), JobProgress):
                assert event is not None, "the held job never made progress"
            doomed.kill9()
            [retried] = await rig.wait([job_id], until=frozenset({JobStatus.queued, *TERMINAL_STATUSES}))
            assert retried.status == JobStatus.queued and retried.attempts == 1
            assert rig.lost and not rig.handle.ready
            hold.release()
            rig.handle.url, rig.handle.ready = worker_url, True
            [job] = await rig.wait([job_id])
            assert job.status == JobStatus.completed and job.attempts == 2
        finally:
            steps.close()
            await rig.dispatcher.stop()
            rig.store.close()


async def test_a_job_accepted_before_any_worker_was_ready_gets_the_default_model(rig_factory: Any) -> None:
    # Stored with no model (nothing could say which exist yet) and no default configured: the dispatcher
    # picks the default from the workers it can now see, the same one /api/v1/models would show.
    rig = rig_factory()
    client = WorkerClient(rig.handle.url)
    try:
        rig.handle.models = (await client.models()).models
    finally:
        await client.aclose()
    job_id = rig.submit(req(model=None))
    await rig.dispatcher.start()
    [job] = await rig.wait([job_id])
    assert job.status == JobStatus.completed and job.attempts == 1
    assert job.request.model is None and len(job.results) == 1


async def test_an_idle_dispatcher_leaves_the_store_alone_until_woken(rig_factory: Any) -> None:
    rig = rig_factory(idle_poll_s=3600)
    statements: list[str] = []
    sa.event.listen(rig.store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    await rig.dispatcher.start()
    await asyncio.sleep(0.3)  # its first round
    statements.clear()
    await asyncio.sleep(1.0)
    # At most one housekeeping pass (lapsed leases, deadlines); polling at 20 Hz would be ~40 statements.
    assert len(statements) <= 6, statements
    # A submit here wakes it: with an hour between polls, nothing else could start the job.
    job_id = rig.submit(req())
    rig.dispatcher.notify()
    [job] = await rig.wait([job_id])
    assert job.status == JobStatus.completed


async def test_a_call_ending_does_not_send_the_dispatcher_back_to_an_empty_queue(
    rig_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A call frees its worker twice (images made, call over): the first look finds the queue empty and the
    # second trusts it, so each job costs one such read, not two. Jobs submitted meanwhile still run, and
    # with an hour between idle polls only the submit's wake-up can start them.
    rig = rig_factory(idle_poll_s=3600)
    looks: list[float] = []
    real = rig.store.next_eligible_at

    def counted() -> float | None:
        looks.append(time.monotonic())
        return real()

    monkeypatch.setattr(rig.store, "next_eligible_at", counted)
    await rig.dispatcher.start()
    await asyncio.sleep(0.3)  # its first round: one look at the empty queue
    looks.clear()
    for i in range(3):
        job_id = rig.submit(req(seed=i))
        rig.dispatcher.notify()
        [job] = await rig.wait([job_id])
        assert job.status == JobStatus.completed
    await asyncio.sleep(0.3)  # the last call's end has been handled
    assert len(looks) == 3, f"{len(looks)} reads of the queue for 3 jobs"


@pytest.mark.postgres
async def test_a_submit_on_another_gateway_wakes_the_dispatcher(tmp_path: Path, worker_url: str) -> None:
    url = os.environ.get("ABLEREFUSAL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"t_wake_{uuid.uuid4().hex[:12]}"
    here = JobStore(url, schema=schema)
    elsewhere = JobStore(url, schema=schema)
    rig = Rig(tmp_path, worker_url, store=here, idle_poll_s=3600)
    try:
        await rig.dispatcher.start()
        await asyncio.to_thread(_wait_listening, elsewhere, f"ablerefusal-listen {schema}")
        # Another gateway's submit: no notify() here, and an hour between polls. Only NOTIFY can wake us.
        job_id = await asyncio.to_thread(lambda: elsewhere.submit(req()).job.id)
        [job] = await rig.wait([job_id])
        assert job.status == JobStatus.completed
    finally:
        await rig.dispatcher.stop()
        here.close()
        with elsewhere.engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        elsewhere.close()


async def test_call_building_seeds_and_memory_options(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "http://127.0.0.1:1")
    claims = [
        ClaimedJob(id="a", attempt=1, request=req(seed=SEED_MAX - 1, batch_size=3), deadline_at=0, memory_saving=False),
        ClaimedJob(id="b", attempt=2, request=req(prompt="b", seed=4), deadline_at=0, memory_saving=True),
    ]
    call = await Call(rig.dispatcher, rig.handle, WorkerSlot("w0"), WorkerClient(rig.handle.url), claims).build(MODEL)
    assert call is not None
    assert [i.seeds for i in call.items] == [[SEED_MAX - 1, SEED_MAX, 0], [4]]
    assert call.memory == MEMORY_SAVING and call.model == MODEL and not call.previews
    assert item_seeds(7, 2) == [7, 8]
    # A job that asked for previews gets them before anyone subscribes (the studio's first job).
    claims[1] = ClaimedJob(id="b", attempt=1, request=req(previews=True), deadline_at=0, memory_saving=False)
    call = await Call(rig.dispatcher, rig.handle, WorkerSlot("w0"), WorkerClient(rig.handle.url), claims).build(MODEL)
    assert call is not None
    assert call.previews
    rig.store.close()


async def test_a_job_that_ends_right_after_an_image_keeps_it(tmp_path: Path) -> None:
    # Images are written beside the stream; the item's error, read at once, must wait for that write.
    rig = Rig(tmp_path, "http://127.0.0.1:1")
    job_id = rig.submit(req(batch_size=2))
    [claim] = rig.store.claim("w0")
    call = Call(rig.dispatcher, rig.handle, WorkerSlot("w0"), WorkerClient(rig.handle.url), [claim])
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


async def test_a_failed_progress_write_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(tmp_path, "http://127.0.0.1:1")
    job_id = rig.submit(req(steps=4))
    [claim] = rig.store.claim("w0")
    call = Call(rig.dispatcher, rig.handle, WorkerSlot("w0"), WorkerClient(rig.handle.url), [claim])
    # A real store failure: the previews table is gone, so the write of this step's preview fails.
    with rig.store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE ar_job_previews"))
    await asyncio.sleep(PROGRESS_WRITE_S)  # writes are throttled from the call's start
    with caplog.at_level(logging.WARNING, logger="ablerefusal.gateway.dispatch"):
        progress = ProgressEvent(call_id=call.call_id, step=1, total=4, preview="AAAA", job_ids=[job_id])
        await call._on_event(progress, MODEL)
        deadline = time.monotonic() + WAIT_S
        while not any("progress write failed" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the failed write was never logged"
            await asyncio.sleep(0.01)
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


async def test_leases_are_renewed_while_a_call_runs(rig_factory: Any, hold: Hold) -> None:
    # The job is held until the store's clock is past its first lease and the lease has been renewed; the
    # dispatcher's own housekeeping would requeue it (attempt 2) had renewals stopped.
    rig = rig_factory(lease_s=2.0)
    job_id = rig.submit(req(prompt=hold.prompt()))
    await rig.dispatcher.start()
    await rig.wait([job_id], until=frozenset({JobStatus.running}))
    first_lease = await asyncio.to_thread(_lease_until, rig.store, job_id)
    deadline = time.monotonic() + WAIT_S
    while not (time.time() > first_lease and await asyncio.to_thread(_lease_until, rig.store, job_id) > first_lease):
        assert time.monotonic() < deadline, "the lease was never renewed"
        await asyncio.sleep(0.1)
    hold.release()
    [job] = await rig.wait([job_id])
    assert job.status == JobStatus.completed and job.attempts == 1


def _wait_listening(store: JobStore, application_name: str) -> None:
    """Until the dispatcher's listener has sent LISTEN (seen from another connection)."""
    deadline = time.monotonic() + WAIT_S
    query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name AND query LIKE 'LISTEN%'")
    while True:
        with store.engine.connect() as conn:
            if conn.execute(query, {"name": application_name}).scalar_one() > 0:
                return
        assert time.monotonic() < deadline, "the dispatcher never listened"
        time.sleep(0.05)


def _lease_until(store: JobStore, job_id: str) -> float:
    with store.engine.connect() as conn:
        value = conn.execute(sa.select(jobs_table.c.lease_until).where(jobs_table.c.id == job_id)).scalar_one()
    assert value is not None, f"job {job_id} holds no lease"
    return float(value)


async def test_the_last_step_before_a_pause_reaches_the_store(rig_factory: Any, hold: Hold) -> None:
    # Progress writes are throttled; a step that comes right after the call started and is followed by a long
    # pause (here a hold) must still be written, or pollers and other gateways see step 0 for the whole pause.
    rig = rig_factory()
    job_id = rig.submit(req(prompt=hold.prompt(), steps=20))
    await rig.dispatcher.start()
    deadline = time.monotonic() + WAIT_S
    while (job := await asyncio.to_thread(rig.store.get, job_id)).step < 1:
        assert time.monotonic() < deadline, f"step 1 never reached the store: {job.status} {job.step}"
        await asyncio.sleep(0.05)
    assert job.status == JobStatus.running and job.step == 1
    hold.release()
    [done] = await rig.wait([job_id])
    assert done.status == JobStatus.completed


async def test_calls_to_a_worker_reuse_one_connection(worker_url: str) -> None:
    # A stream closed half-read closes its connection too: the client reads each call to its end, so the
    # next call (and the probes) go over the same keep-alive connection instead of a new TCP handshake.
    import psutil

    port = int(worker_url.rsplit(":", 1)[1])

    def open_ports() -> set[int]:
        return {
            c.laddr.port
            for c in psutil.Process().net_connections(kind="tcp")
            if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
        }

    client = WorkerClient(worker_url)
    try:
        seen: list[set[int]] = []
        for seed in (1, 2):
            call = GenerateCall(
                model=MODEL,
                width=64,
                height=64,
                steps=1,
                items=[GenerateItem(job_id=f"j{seed}", prompt="a", seeds=[seed])],
            )
            events = [event async for event in client.generate(call)]
            assert events[-1].type == "done"
            seen.append(open_ports())
        assert len(seen[0]) == 1 and seen[1] == seen[0]
    finally:
        await client.aclose()
