"""The gateway's limits on input images and the worker's agree: whatever the gateway accepts and stores, a worker
takes on the wire. The gateway stores a PNG re-encoded from what the client sent, so the worker's byte cap must fit
the largest PNG of the most pixels the gateway lets in, not the client's byte limit."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from ablerefusal.gateway.settings import Settings
from ablerefusal.gateway.storage.local import LocalObjectStore
from ablerefusal.gateway.uploads.service import UploadService
from ablerefusal.protocol import MAX_INPUT_IMAGE_BYTES, MAX_INPUT_PIXELS, GenerateCall, GenerateItem, GenerationMode
from ablerefusal.worker.engine.modes.inputs import prepare_inputs


def test_a_photo_the_gateway_accepts_reaches_the_worker_though_its_png_is_larger(tmp_path: Path) -> None:
    # A noisy 2600x2600 photo: as a JPEG well under the default 16 MB upload limit, as the stored PNG above 16 MiB
    # (the worker's old fixed cap, which failed such jobs after the gateway had accepted them).
    noise = np.random.default_rng(0).integers(0, 256, (2600, 2600, 3), dtype=np.uint8)
    jpeg = io.BytesIO()
    Image.fromarray(noise).save(jpeg, "JPEG", quality=95)
    storage = Settings().storage
    assert len(jpeg.getvalue()) < storage.max_input_bytes
    uploads = UploadService(LocalObjectStore(tmp_path), storage.max_input_bytes, storage.max_input_pixels)
    prepared = uploads.prepare(jpeg.getvalue())
    assert len(prepared.png) > 16 * 1024 * 1024
    call = GenerateCall(
        model="tiny-sd15", width=64, height=64, steps=2, mode=GenerationMode.img2img,
        items=[GenerateItem(job_id="j", prompt="p", seeds=[1], init_image=base64.b64encode(prepared.png).decode())],
    )  # fmt: skip
    [inputs] = prepare_inputs(call)
    assert inputs.init.size == (64, 64)


def test_the_wire_cap_fits_the_largest_png_of_the_most_pixels() -> None:
    # Worst case: RGBA noise, which deflate cannot shrink, at the pixel limit's shape (a quarter of it here, to
    # stay light; PNG's framing grows with the rows, so the bound is checked per pixel with the same slack).
    side = int(MAX_INPUT_PIXELS**0.5) // 2
    noise = np.random.default_rng(1).integers(0, 256, (side, side, 4), dtype=np.uint8)
    png = io.BytesIO()
    Image.fromarray(noise, "RGBA").save(png, "PNG")
    framing = len(png.getvalue()) - 4 * side * side
    assert framing > 0 and 4 * MAX_INPUT_PIXELS + 4 * framing <= MAX_INPUT_IMAGE_BYTES


def test_the_gateway_may_not_let_in_more_pixels_than_workers_take() -> None:
    with pytest.raises(ValidationError) as err:
        Settings.model_validate({"storage": {"max_input_pixels": MAX_INPUT_PIXELS + 1}})
    [problem] = err.value.errors()
    assert problem["loc"] == ("storage", "max_input_pixels") and problem["type"] == "less_than_equal"
