"""The worker pool against a stand-in worker on a real port: a protocol that grows, a major version it must
refuse, and a log that speaks only when a worker's state changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest
from fake_worker import FakeWorker, info_body, model_body

from ablerefusal.gateway.settings import Settings
from ablerefusal.gateway.workers.client import WorkerClient
from ablerefusal.gateway.workers.pool import WorkerHandle, WorkerPool
from ablerefusal.protocol import DoneEvent, GenerateCall, GenerateItem, StartedEvent

POOL_LOG = "ablerefusal.gateway.workers.pool"


async def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def pool_for(make_settings: Callable[..., Settings]) -> AsyncIterator[Callable[..., object]]:
    pools: list[WorkerPool] = []

    async def start(worker: FakeWorker, **workers: object) -> WorkerHandle:
        settings = make_settings(workers={"local": 0, "urls": [worker.url], "probe_interval_s": 0.02, **workers})
        pool = WorkerPool(settings)
        pools.append(pool)
        await pool.start()
        return pool.handles[0]

    yield start
    for pool in pools:
        await pool.stop()


async def test_answers_with_fields_this_gateway_does_not_know_are_accepted(pool_for: Callable[..., object]) -> None:
    future = FakeWorker(
        info=info_body(protocol_version="1.9", gpu_topology={"nvlink": True}),
        models=[model_body("m1", license="openrail", loaded=True)],
    )
    with future:
        handle = await pool_for(future)  # type: ignore[operator]
        await wait_for(lambda: handle.ready, "the worker to be ready")
        assert [m.id for m in handle.models] == ["m1"] and handle.models[0].loaded
        assert handle.info is not None and handle.info.protocol_version == "1.9"


async def test_a_stream_with_new_fields_and_an_unknown_event_type_is_read() -> None:
    lines = [
        {"type": "started", "call_id": "c", "model": "m", "device": "cpu", "job_ids": ["j"], "node": "gpu-7"},
        {"type": "telemetry", "call_id": "c", "watts": 300},  # an event a newer worker sends
        {"type": "done", "call_id": "c", "timings": {"total_s": 1.0, "flops": 9}, "cost": 0.1},
    ]
    call = GenerateCall(model="m", items=[GenerateItem(job_id="j", prompt="p", seeds=[1])])
    with FakeWorker(stream_lines=lines) as worker:
        client = WorkerClient(worker.url)
        events = [event async for event in client.generate(call)]
        await client.aclose()
    assert [type(e) for e in events] == [StartedEvent, DoneEvent]


async def test_a_worker_of_another_major_version_is_refused_with_the_reason(
    pool_for: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=POOL_LOG)
    with FakeWorker(info=info_body(protocol_version="2.0")) as worker:
        handle = await pool_for(worker)  # type: ignore[operator]
        await wait_for(lambda: worker.count("/v1/info") >= 5, "several probes")
        assert not handle.ready
        assert handle.last_error is not None and "'2.0'" in handle.last_error and "incompatible" in handle.last_error
        assert worker.count("/v1/models") == 0  # an incompatible worker is not asked anything more
    refusals = [r for r in caplog.records if r.name == POOL_LOG and r.levelno == logging.ERROR]
    assert len(refusals) == 1 and "'2.0'" in refusals[0].getMessage()


async def test_probes_are_logged_only_when_the_state_changes(
    pool_for: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeWorker() as worker:
        handle = await pool_for(worker)  # type: ignore[operator]
        await wait_for(lambda: handle.ready and worker.count("/v1/ready") >= 10, "ten ready probes")
        worker.ready_status = 503
        probes = worker.count("/v1/ready")
        await wait_for(lambda: not handle.ready and worker.count("/v1/ready") >= probes + 10, "ten unready probes")
    # httpx's own request lines are silenced by the gateway's logging setup (gateway/logs.py).
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("ablerefusal")]
    assert lines == ["worker ready on cpu", "worker not ready: /v1/ready answered 503: warming up"]


async def test_the_pool_sends_the_configured_token_to_remote_workers(pool_for: Callable[..., object]) -> None:
    with FakeWorker() as worker:
        handle = await pool_for(worker, token="s3cret")  # type: ignore[operator]
        await wait_for(lambda: handle.ready, "the worker to be ready")
    assert {auth for _, auth in worker.requests} == {"Bearer s3cret"}
