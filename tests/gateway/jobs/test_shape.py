"""The coalescing shape (jobs/shape.py) and its use by claims: only jobs of the same image mode, mode
parameters and input sizes share a call; plain text-to-image jobs keep coalescing as before."""

from __future__ import annotations

from typing import Any

import pytest
from store_helpers import req

from ablerefusal.gateway.jobs import JobStore
from ablerefusal.gateway.jobs.shape import coalesce_shape, request_mode
from ablerefusal.gateway.schemas import GenerateRequest
from ablerefusal.protocol import GenerationMode

INIT = "a" * 64
MASK = "b" * 64
SIZES = {"init_image": (64, 64)}
MASK_SIZES = {"init_image": (64, 64), "mask": (64, 64)}


def image_req(**over: Any) -> GenerateRequest:
    return req(init_image=INIT, **over)


def test_plain_text_to_image_has_the_empty_shape() -> None:
    assert coalesce_shape(req(), {}) == ""
    # Image-mode fields a text-to-image job does not read keep it plain.
    assert coalesce_shape(req(denoising_strength=0.3, mask_blur=9, resize_mode="crop"), {}) == ""


def test_modes_follow_the_fields() -> None:
    assert request_mode(req()) is GenerationMode.txt2img
    assert request_mode(req(hires={"scale": 2})) is GenerationMode.txt2img
    assert request_mode(image_req()) is GenerationMode.img2img
    assert request_mode(image_req(mask=MASK)) is GenerationMode.inpaint
    assert request_mode(image_req(outpaint={"right": 64})) is GenerationMode.outpaint


def test_shape_is_a_stable_hash_of_what_the_mode_reads() -> None:
    base = coalesce_shape(image_req(denoising_strength=0.5), SIZES)
    assert len(base) == 64 and int(base, 16) >= 0
    assert coalesce_shape(image_req(denoising_strength=0.5), dict(SIZES)) == base
    # Per-item values never split a shape.
    assert coalesce_shape(image_req(denoising_strength=0.5, prompt="other", seed=9, cfg_scale=3), SIZES) == base
    # img2img does not read mask parameters.
    assert coalesce_shape(image_req(denoising_strength=0.5, mask_blur=12, mask_invert=True), SIZES) == base


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"denoising_strength": 0.5}, {"denoising_strength": 0.6}),
        ({"resize_mode": "resize"}, {"resize_mode": "fill"}),
        ({"mask": MASK, "mask_blur": 4}, {"mask": MASK, "mask_blur": 5}),
        ({"mask": MASK}, {"mask": MASK, "mask_invert": True}),
        ({"mask": MASK}, {"mask": MASK, "inpaint_only_masked": True}),
        ({"mask": MASK}, {"mask": MASK, "inpainting_fill": "fill"}),
        ({"outpaint": {"left": 8}}, {"outpaint": {"right": 8}}),
        ({}, {"mask": MASK}),
        ({}, {"outpaint": {"left": 8}}),
    ],
)
def test_every_mode_parameter_splits_the_shape(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert coalesce_shape(image_req(**a), MASK_SIZES) != coalesce_shape(image_req(**b), MASK_SIZES)


def test_input_sizes_and_hires_split_the_shape() -> None:
    square, wide = {"init_image": (64, 64)}, {"init_image": (96, 64)}
    assert coalesce_shape(image_req(), square) != coalesce_shape(image_req(), wide)
    plain_hires = coalesce_shape(req(hires={"scale": 2}), {})
    assert plain_hires not in ("", coalesce_shape(req(hires={"scale": 1.5}), {}))
    assert plain_hires != coalesce_shape(req(hires={"scale": 2, "upscaler": "nearest"}), {})


def test_claims_coalesce_only_jobs_of_one_shape(store: JobStore) -> None:
    def submit(request: GenerateRequest, sizes: dict[str, tuple[int, int]]) -> str:
        return store.submit(request, shape=coalesce_shape(request, sizes)).job.id

    head = submit(image_req(denoising_strength=0.5), SIZES)
    plain = submit(req(), {})
    other_size = submit(image_req(denoising_strength=0.5), {"init_image": (128, 64)})
    other_strength = submit(image_req(denoising_strength=0.7), SIZES)
    inpaint = submit(image_req(denoising_strength=0.5, mask=MASK), MASK_SIZES)
    same = submit(image_req(denoising_strength=0.5, prompt="another prompt", seed=3), SIZES)
    plain_too = submit(req(prompt="b"), {})
    claimed = store.claim("w", max_images=4, coalesce=True)
    assert [c.id for c in claimed] == [head, same]
    assert claimed[1].request.init_image == INIT
    # Plain text-to-image jobs still coalesce with each other (shape "").
    assert [c.id for c in store.claim("w", max_images=4, coalesce=True)] == [plain, plain_too]
    rest = [c.id for _ in range(3) for c in store.claim("w", max_images=4, coalesce=True)]
    assert rest == [other_size, other_strength, inpaint]
