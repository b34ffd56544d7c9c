"""Live job events between two gateways' event hubs through the local PostgreSQL's LISTEN/NOTIFY
(gateway/fleet/bus.py), in one process: two hubs and two buses, as two gateways have them.

The follower on gateway B polls the store only once an hour here, so whatever it sees promptly came through
the bus: progress as is, previews read from the store by reference, status changes and images by re-reading
the job when poked."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import create_engine, text

from ablerefusal.gateway.events import EventHub, JobPreview, JobProgress, JobStatusChange, follow_job
from ablerefusal.gateway.fleet.bus import MAX_PAYLOAD, FleetBus, Notice, pack
from ablerefusal.gateway.jobs import JobStore
from ablerefusal.gateway.jobs.engine import normalize_url
from ablerefusal.gateway.schemas import GenerateRequest, JobStatus

pytestmark = pytest.mark.postgres

PG_URL = os.environ.get("ABLEREFUSAL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
WAIT_S = 30.0  # only a safety net against a hang: every wait below ends as soon as its event arrives


@pytest.fixture
def store() -> Iterator[JobStore]:
    schema = f"t_bus_{uuid.uuid4().hex[:12]}"
    store = JobStore(PG_URL, schema=schema)
    try:
        yield store
    finally:
        store.close()
        engine = create_engine(normalize_url(PG_URL))
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


class Side:
    """One gateway's hub and bus."""

    def __init__(self, store: JobStore, name: str, store_key: str) -> None:
        assert store.listen_url is not None
        self.hub = EventHub()
        self.cancels: asyncio.Queue[str] = asyncio.Queue()
        self.bus = FleetBus(
            store.listen_url,
            store_key,
            name,
            self.hub,
            load_preview=store.preview,
            on_cancel=self.cancels.put_nowait,
        )
        self.hub.relay = self.bus.relay
        self.task = asyncio.create_task(self.bus.run())


@pytest.fixture
async def sides(store: JobStore) -> AsyncIterator[tuple[Side, Side]]:
    key = store.notify_payload
    a, b = Side(store, "gw-a", key), Side(store, "gw-b", key)
    # Both listening: a notice from each reaches the other.
    async with asyncio.timeout(WAIT_S):
        while not (a.bus.heard and b.bus.heard):
            a.bus.relay_cancel("probe")
            b.bus.relay_cancel("probe")
            await asyncio.sleep(0.1)
    for side in (a, b):
        while not side.cancels.empty():
            side.cancels.get_nowait()
    try:
        yield a, b
    finally:
        for side in (a, b):
            side.task.cancel()
        await asyncio.gather(a.task, b.task, return_exceptions=True)


def jpeg(color: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="JPEG")
    return base64.b64encode(buffer.getvalue()).decode()


def submit(store: JobStore) -> str:
    request = GenerateRequest(prompt="a red cube", width=64, height=64, steps=2, model="tiny")
    return store.submit(request).job.id


async def test_progress_previews_and_the_end_of_a_job_reach_a_follower_on_the_other_gateway(
    store: JobStore, sides: tuple[Side, Side]
) -> None:
    a, b = sides
    job_id = await asyncio.to_thread(submit, store)
    seen: list[Any] = []
    follower = follow_job(b.hub, job_id, store.get, poll_interval_s=3600)
    async with asyncio.timeout(WAIT_S):
        first = await anext(follower)
        assert isinstance(first, JobStatusChange) and first.status == JobStatus.queued

        # Gateway A claims and runs the job.
        [claim] = await asyncio.to_thread(store.claim, "w0")
        assert claim.job is not None
        a.hub.publish_job(claim.job)
        running = await anext(follower)
        assert isinstance(running, JobStatusChange) and running.status == JobStatus.running

        a.hub.publish(JobProgress(job_id=job_id, step=1, total=2, progress=50.0))
        progress = await anext(follower)
        assert isinstance(progress, JobProgress) and (progress.step, progress.total) == (1, 2)

        # The preview's bytes go through the store, never the channel.
        red = jpeg((220, 20, 20))
        await asyncio.to_thread(store.record_progress, [claim], 2, 2, {job_id: red})
        a.hub.publish(JobPreview(job_id=job_id, step=2, image="data:image/jpeg;base64," + red))
        preview = await anext(follower)
        assert isinstance(preview, JobPreview)
        assert preview.step == 2 and preview.image == "data:image/jpeg;base64," + red

        await asyncio.to_thread(store.add_result, job_id, 0, f"{job_id}/0.png", 7, {}, "", attempt=claim.attempt)
        done = await asyncio.to_thread(store.complete, job_id, attempt=claim.attempt)
        assert done is not None
        a.hub.publish_job(done)
        async for event in follower:
            seen.append(event)
    assert [e.type for e in seen] == ["image", "status"]
    assert seen[-1].terminal and seen[-1].status == JobStatus.completed


async def test_each_gateway_hears_only_the_others_and_only_its_own_store(
    store: JobStore, sides: tuple[Side, Side]
) -> None:
    a, b = sides
    assert store.listen_url is not None
    elsewhere = Side(store, "gw-c", "another_schema")
    sub_a = a.hub.subscribe("job-1")
    sub_b = b.hub.subscribe("job-1")
    try:
        # C's store is another fleet: B must not see its progress, only A's that follows.
        async with asyncio.timeout(WAIT_S):
            while not elsewhere.bus.sent:
                elsewhere.hub.publish(JobProgress(job_id="job-1", step=5, total=9, progress=55.5))
                await asyncio.sleep(0.1)
        a.hub.publish(JobProgress(job_id="job-1", step=1, total=9, progress=11.1))
        a.hub.publish(JobProgress(job_id="job-1", step=2, total=9, progress=22.2))
        steps: list[int] = []
        async with asyncio.timeout(WAIT_S):
            while 2 not in steps:
                event = await sub_b.get()
                assert isinstance(event, JobProgress)
                steps.append(event.step)
        # Step 1 may have been superseded by step 2 while a send was in flight; C's step 5 never arrives.
        assert steps in ([1, 2], [2])
        # A's own subscriber got each event once, from its hub, not again from the channel.
        got_a = [await sub_a.get(timeout=0), await sub_a.get(timeout=0)]
        assert [e.step for e in got_a if isinstance(e, JobProgress)] == [1, 2]
        assert await sub_a.get(timeout=0.5) is None
    finally:
        sub_a.close()
        sub_b.close()
        elsewhere.task.cancel()
        await asyncio.gather(elsewhere.task, return_exceptions=True)


async def test_a_cancel_request_reaches_the_other_gateway(sides: tuple[Side, Side]) -> None:
    a, b = sides
    a.bus.relay_cancel("job-9")
    async with asyncio.timeout(WAIT_S):
        assert await b.cancels.get() == "job-9"
    assert a.cancels.empty()  # a gateway does not hear itself


def test_notices_are_packed_under_the_payload_limit_in_order() -> None:
    notices = [Notice(j=str(uuid.uuid4()), k="progress", st=n, t=50) for n in range(400)]
    payloads = pack("schema", "gw-a", notices)
    assert len(payloads) > 1 and all(len(p.encode()) <= MAX_PAYLOAD for p in payloads)
    from ablerefusal.gateway.fleet.bus import Envelope

    unpacked = [n for p in payloads for n in Envelope.model_validate_json(p).e]
    assert unpacked == notices
