"""Image jobs through the dispatcher to a real worker process (tiny SD 1.5, CPU): the call carries the
stored uploads' bytes and the head job's mode parameters; compatible image jobs coalesce and draw the same
pixels as alone; a job whose upload vanished fails with a clear error without taking its batch down."""

from __future__ import annotations

import asyncio
import base64
import io
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ablerefusal.gateway import job_inputs
from ablerefusal.gateway.dispatch import Call, Dispatcher, WorkerSlot
from ablerefusal.gateway.events import EventHub
from ablerefusal.gateway.jobs import ClaimedJob, JobStore
from ablerefusal.gateway.schemas import TERMINAL_STATUSES, GenerateRequest, Job, JobStatus
from ablerefusal.gateway.settings import Settings
from ablerefusal.gateway.storage.local import LocalObjectStore
from ablerefusal.gateway.uploads import UploadService
from ablerefusal.gateway.workers.client import WorkerClient
from ablerefusal.protocol import ModelInfo
from procs import worker_proc

MODEL = "tiny-sd15"
WAIT_S = 180.0


@pytest.fixture(scope="module")
def worker_url(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    with worker_proc(tiny_models_dir, log_path) as proc:
        proc.start(timeout=WAIT_S)
        yield proc.url


@dataclass
class Handle:
    id: str
    url: str
    token: str | None = None
    ready: bool = True
    busy: bool = False
    info: Any = None
    models: list[ModelInfo] = field(default_factory=list)


def picture(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def inline(image: Image.Image) -> str:
    return base64.b64encode(png(image)).decode()


def req(**kw: Any) -> GenerateRequest:
    base: dict[str, Any] = {"prompt": "a red cube", "width": 64, "height": 64, "steps": 4, "model": MODEL}
    return GenerateRequest(**{**base, **kw})


class Rig:
    """Store, uploads and dispatcher on one real worker, in a temp folder."""

    def __init__(self, tmp: Path, url: str, **queue: Any) -> None:
        queue.setdefault("gather_window_ms", 0)
        settings = Settings.model_validate({"queue": queue, "inference": {"max_batch_size": 4}})
        self.output_dir = tmp / "outputs"
        self.uploads = UploadService(LocalObjectStore(tmp / "inputs"), 1 << 24, 4096 * 4096)
        self.store = JobStore(f"sqlite:///{tmp}/{uuid.uuid4().hex}.db", settings.queue)
        self.handle = Handle(id="w0", url=url)
        self.dispatcher = Dispatcher(
            self.store, settings, LocalObjectStore(self.output_dir), EventHub(), [self.handle], uploads=self.uploads
        )

    async def submit(self, request: GenerateRequest) -> str:
        """What GatewayService.submit does with a request's images: check, store as uploads, then the job."""
        inputs = await job_inputs.resolve(request, self.uploads)
        await job_inputs.store(inputs, self.uploads)
        return self.store.submit(inputs.request, shape=inputs.shape).job.id

    async def wait(self, job_ids: list[str]) -> list[Job]:
        deadline = time.monotonic() + WAIT_S
        while True:
            jobs = [await asyncio.to_thread(self.store.get, i) for i in job_ids]
            if all(j.status in TERMINAL_STATUSES for j in jobs):
                return jobs
            assert time.monotonic() < deadline, f"jobs stuck: {[(j.id, j.status) for j in jobs]}"
            await asyncio.sleep(0.05)

    def pixels(self, job: Job) -> list[np.ndarray]:
        paths = [self.output_dir / r.image_url.removeprefix("/outputs/") for r in job.results]
        return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


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


def _img2img_requests() -> list[GenerateRequest]:
    # Different init images of one size, prompts and seeds: per item. Strength and size: shared.
    return [
        req(prompt="a dog", seed=11, batch_size=2, init_image=inline(picture(96, 80, 1)), denoising_strength=0.5),
        req(prompt="a fox", seed=5, init_image=inline(picture(96, 80, 2)), denoising_strength=0.5),
    ]


async def test_img2img_jobs_coalesce_and_draw_the_same_pixels_as_alone(rig_factory: Any) -> None:
    alone = rig_factory(coalesce=False)
    alone_ids = [await alone.submit(r) for r in _img2img_requests()]
    await alone.dispatcher.start()
    solo = await alone.wait(alone_ids)
    assert [j.status for j in solo] == [JobStatus.completed] * 2, [j.error for j in solo]
    assert len({j.started_at for j in solo}) == 2  # separate calls

    together = rig_factory(coalesce=True)
    ids = [await together.submit(r) for r in _img2img_requests()]
    # Same mode and input size, another strength: not in the same call.
    apart = await together.submit(req(seed=5, init_image=inline(picture(96, 80, 2)), denoising_strength=0.6))
    await together.dispatcher.start()
    batched = await together.wait([*ids, apart])
    assert [j.status for j in batched] == [JobStatus.completed] * 3, [j.error for j in batched]
    assert batched[0].started_at == batched[1].started_at != batched[2].started_at
    for one, many in zip(solo, batched, strict=False):
        assert [r.seed for r in one.results] == [r.seed for r in many.results]
        for a, b in zip(alone.pixels(one), together.pixels(many), strict=True):
            assert a.shape == (64, 64, 3)
            assert np.array_equal(a, b)
    # The strength reached the worker and its metadata.
    assert "Denoising strength: 0.5" in batched[0].results[0].infotext
    assert "Denoising strength: 0.6" in batched[2].results[0].infotext
    assert batched[0].results[0].metadata["mode"] == "img2img"


async def test_a_vanished_upload_fails_its_job_and_not_the_batch(rig_factory: Any) -> None:
    rig = rig_factory(coalesce=True)
    kept = await rig.submit(req(seed=1, init_image=inline(picture(64, 64, 3)), denoising_strength=0.5))
    gone = await rig.submit(req(seed=2, init_image=inline(picture(64, 64, 4)), denoising_strength=0.5))
    gone_id = rig.store.get(gone).request.init_image
    assert gone_id is not None
    rig.uploads.objects.delete(f"{gone_id}.png")  # as if someone cleaned the inputs folder
    await rig.dispatcher.start()
    done_kept, done_gone = await rig.wait([kept, gone])
    assert done_kept.status == JobStatus.completed and len(done_kept.results) == 1
    assert done_gone.status == JobStatus.failed and done_gone.error is not None
    assert done_gone.error.code == "invalid_request"
    assert f"init_image: upload {gone_id} is no longer stored" in done_gone.error.message
    assert done_gone.attempts == 1  # not retried: the image will not come back by itself


async def test_calls_carry_the_upload_bytes_and_only_the_mode_fields_they_need(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "http://127.0.0.1:1")
    source = picture(64, 64, 9)
    mask = Image.new("L", (64, 64), 255)

    async def build(request: GenerateRequest) -> dict[str, Any]:
        inputs = await job_inputs.resolve(request, rig.uploads)
        await job_inputs.store(inputs, rig.uploads)
        claims = [ClaimedJob(id="a", attempt=1, request=inputs.request, deadline_at=0, memory_saving=False)]
        call = await Call(rig.dispatcher, rig.handle, WorkerSlot("w0"), WorkerClient(rig.handle.url), claims).build(
            MODEL
        )
        assert call is not None
        # What the worker client sends (workers/client.py).
        body: dict[str, Any] = call.model_dump(mode="json", exclude_none=True, exclude_unset=True)
        return body

    plain = await build(req(seed=1))
    new_fields = {"mode", "denoising_strength", "resize_mode", "mask_blur", "inpainting_fill", "outpaint", "hires"}
    assert not new_fields & plain.keys()
    assert not {"init_image", "mask"} & plain["items"][0].keys()

    inpaint = await build(req(seed=1, init_image=inline(source), mask=inline(mask), mask_blur=2, resize_mode="crop"))
    assert inpaint["mode"] == "inpaint" and inpaint["mask_blur"] == 2 and inpaint["resize_mode"] == "crop"
    item = inpaint["items"][0]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(base64.b64decode(item["init_image"])))), np.asarray(source))
    # The bytes of the stored upload, as GET /api/v1/uploads/<id> serves them.
    mask_id = rig.uploads.prepare_inline(inline(mask)).upload.id
    assert base64.b64decode(item["mask"]) == rig.uploads.read(mask_id)

    outpaint = await build(req(seed=1, init_image=inline(source), outpaint={"right": 64}))
    assert outpaint["mode"] == "outpaint" and outpaint["outpaint"]["right"] == 64 and "mask" not in outpaint["items"][0]
    hires = await build(req(seed=1, hires={"scale": 2, "upscaler": "lanczos"}))
    assert "mode" not in hires and hires["hires"]["scale"] == 2 and hires["hires"]["upscaler"] == "lanczos"
    rig.store.close()
