"""img2img, inpaint, outpaint and hires fix through the worker's HTTP API, on the tiny real models (CPU).

Expectations are computed from the inputs with Pillow (a resize, a blur), never copied from an output.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw, ImageFilter
from test_cancel_busy import _start
from worker_helpers import call_body, images, pixels, run_call

from holds import Hold

MODELS = ["tiny-sd15", "tiny-sdxl"]


def picture(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth colourful picture (noise would make resampling comparisons meaningless)."""
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    a, b, c = rng.uniform(0.02, 0.2, 3)
    rgb = np.stack([np.sin(a * x) * 120 + 128, np.cos(b * y) * 120 + 128, np.sin(c * (x + y)) * 120 + 128], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def b64(image: Image.Image, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def square_mask(width: int, height: int, box: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    return mask


def item(job_id: str, seeds: list[int], **over: Any) -> dict[str, Any]:
    return {"job_id": job_id, "prompt": f"a painting {job_id}", "seeds": seeds, **over}


def only(events: list[Any]) -> Any:
    found = images(events)
    assert events[-1].type == "done", events[-1]
    return found


@pytest.mark.parametrize("model", MODELS)
def test_image_pipelines_run_on_the_loaded_weights(worker_client: TestClient, model: str) -> None:
    # img2img and inpaint pipelines come from the cached text-to-image one (from_pipe): the very same modules,
    # no load from disk and no copy of a weight.
    from ablerefusal.worker.engine.modes.derived import Kind, derive

    service = worker_client.app.state.service  # type: ignore[attr-defined]
    only(run_call(worker_client, call_body(model)))
    loads = service.cache.loads
    source = picture(64, 64)
    mask = square_mask(64, 64, (16, 16, 47, 47))
    only(run_call(worker_client, call_body(model, mode="img2img", items=[item("a", [1], init_image=b64(source))])))
    inpaint = item("b", [1], init_image=b64(source), mask=b64(mask))
    only(run_call(worker_client, call_body(model, mode="inpaint", items=[inpaint])))
    assert service.cache.loads == loads
    resident = service.cache.peek(model)
    assert resident is not None
    base = resident.pipe
    for kind in Kind:
        derived = derive(base, kind, base.scheduler)
        assert type(derived) is not type(base)
        for name in ("unet", "vae", "text_encoder", "tokenizer"):
            assert getattr(derived, name) is getattr(base, name), (kind, name)


def test_strength_zero_returns_the_input_resized(worker_client: TestClient) -> None:
    source = picture(96, 80)
    body = call_body(mode="img2img", denoising_strength=0.0, items=[item("j", [3], init_image=b64(source))])
    out = only(run_call(worker_client, body))[("j", 0)]
    expected = np.asarray(source.resize((64, 64), Image.Resampling.LANCZOS))
    assert np.array_equal(pixels(out), expected)
    assert "Denoising strength: 0," in out.infotext and out.metadata["mode"] == "img2img"


@pytest.mark.parametrize("model", MODELS)
def test_img2img_redraws_and_is_the_same_alone_and_coalesced(worker_client: TestClient, model: str) -> None:
    a, b = b64(picture(64, 64, 1)), b64(picture(64, 64, 2))
    items = [item("a", [11, 12], init_image=a), item("b", [13], init_image=b)]
    common = {"mode": "img2img", "denoising_strength": 0.5, "steps": 4}
    together = only(run_call(worker_client, call_body(model, items=items, **common)))
    for it in items:
        alone = only(run_call(worker_client, call_body(model, items=[it], **common)))
        for key, event in alone.items():
            assert np.array_equal(pixels(event), pixels(together[key])), key
    redrawn = pixels(together[("a", 0)])
    assert not np.array_equal(redrawn, np.asarray(picture(64, 64, 1)))
    # The init image matters: another one under the same seed gives another image.
    other = only(run_call(worker_client, call_body(model, items=[item("a", [11], init_image=b)], **common)))
    assert not np.array_equal(pixels(other[("a", 0)]), redrawn)


@pytest.mark.parametrize("mode", ["img2img", "inpaint"])
def test_image_items_with_their_own_cfg_scale_equal_each_alone(worker_client: TestClient, mode: str) -> None:
    # Wider coalescing in the image modes: items guided at other scales share one call (guidance per row) and
    # each draws the pixels of its job run alone at its own scale.
    mask = {"mask": b64(square_mask(64, 64, (16, 16, 47, 47)))} if mode == "inpaint" else {}
    items = [
        item("a", [21], init_image=b64(picture(64, 64, 5)), **mask),
        item("b", [22], init_image=b64(picture(64, 64, 6)), cfg_scale=3.0, **mask),
    ]
    common = {"mode": mode, "denoising_strength": 0.6, "steps": 3}

    def run(its: list[dict[str, Any]], cfg_scale: float) -> dict[Any, Any]:
        return only(run_call(worker_client, call_body(items=its, cfg_scale=cfg_scale, **common)))

    together = run(items, 9.0)
    a_alone, b_alone = run([items[0]], 9.0), run([{**items[1], "cfg_scale": None}], 3.0)
    for key, event in [*a_alone.items(), *b_alone.items()]:
        assert np.array_equal(pixels(event), pixels(together[key])), key
    # The item's own scale acted: at the call's scale, b draws something else.
    b_at_nine = run([{**items[1], "cfg_scale": None}], 9.0)
    assert not np.array_equal(pixels(b_at_nine[("b", 0)]), pixels(together[("b", 0)]))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("fill", ["original", "fill", "latent_noise", "latent_nothing"])
def test_inpaint_keeps_every_pixel_outside_the_blurred_mask(worker_client: TestClient, model: str, fill: str) -> None:
    source = picture(64, 64, 4)
    mask = square_mask(64, 64, (20, 16, 43, 39))
    body = call_body(
        model,
        mode="inpaint",
        denoising_strength=0.9,
        mask_blur=3,
        inpainting_fill=fill,
        steps=3,
        items=[item("j", [5], init_image=b64(source), mask=b64(mask))],
    )
    out = only(run_call(worker_client, body))[("j", 0)]
    result, original = pixels(out), np.asarray(source)
    blurred = np.asarray(mask.filter(ImageFilter.GaussianBlur(3)))
    outside, inside = blurred == 0, blurred == 255
    assert outside.sum() > 2000 and inside.sum() > 50
    assert np.array_equal(result[outside], original[outside])
    assert not np.array_equal(result[inside], original[inside])
    assert "Mask blur: 3" in out.infotext and "Denoising strength: 0.9" in out.infotext


def test_latent_fills_start_the_masked_area_from_noise_or_nothing(worker_client: TestClient) -> None:
    source, mask = b64(picture(64, 64, 15)), b64(square_mask(64, 64, (8, 8, 55, 55)))
    items = [item("a", [91, 92], init_image=source, mask=mask), item("b", [93], init_image=source, mask=mask)]
    results = {}
    for fill in ("original", "latent_noise", "latent_nothing"):
        body = call_body(mode="inpaint", denoising_strength=0.6, steps=4, inpainting_fill=fill, items=items)
        results[fill] = only(run_call(worker_client, body))
        assert f'"inpainting_fill": "{fill}"' in png_metadata(results[fill][("a", 0)])
    a = {fill: pixels(found[("a", 0)]) for fill, found in results.items()}
    assert not np.array_equal(a["latent_noise"], a["original"])
    assert not np.array_equal(a["latent_nothing"], a["original"])
    assert not np.array_equal(a["latent_noise"], a["latent_nothing"])
    # Each row's noise is its own: the same job alone gives the same pixels.
    body = call_body(mode="inpaint", denoising_strength=0.6, steps=4, inpainting_fill="latent_noise", items=[items[1]])
    alone = only(run_call(worker_client, body))
    assert np.array_equal(pixels(alone[("b", 0)]), pixels(results["latent_noise"][("b", 0)]))


def png_metadata(event: Any) -> str:
    return json.dumps(event.metadata, sort_keys=True)


def test_mask_of_another_size_is_resized_and_rgba_transparency_marks_the_area(worker_client: TestClient) -> None:
    source = picture(64, 64, 5)
    # Half-size mask, OpenAI style: opaque everywhere except a transparent square (the area to edit).
    rgba = Image.new("RGBA", (32, 32), (0, 0, 0, 255))
    ImageDraw.Draw(rgba).rectangle((8, 8, 23, 23), fill=(0, 0, 0, 0))
    body = call_body(
        mode="inpaint",
        mask_blur=0,
        denoising_strength=1.0,
        items=[item("j", [6], init_image=b64(source), mask=b64(rgba))],
    )
    result = pixels(only(run_call(worker_client, body))[("j", 0)])
    original = np.asarray(source)
    # The area scales with the mask: 16..47 at full size; Lanczos reaches 6 px past its edges.
    assert np.array_equal(result[:8], original[:8]) and np.array_equal(result[56:], original[56:])
    assert not np.array_equal(result[20:44, 20:44], original[20:44, 20:44])


def test_mask_invert_repaints_the_black_part(worker_client: TestClient) -> None:
    source = picture(64, 64, 6)
    mask = square_mask(64, 64, (16, 16, 47, 47))
    body = call_body(
        mode="inpaint",
        mask_blur=0,
        mask_invert=True,
        items=[item("j", [7], init_image=b64(source), mask=b64(mask))],
    )
    result = pixels(only(run_call(worker_client, body))[("j", 0)])
    original = np.asarray(source)
    assert np.array_equal(result[16:48, 16:48], original[16:48, 16:48])
    assert not np.array_equal(result[:8], original[:8])


@pytest.mark.parametrize("model", MODELS)
def test_inpaint_is_the_same_alone_and_coalesced(worker_client: TestClient, model: str) -> None:
    m1, m2 = square_mask(64, 64, (0, 0, 31, 63)), square_mask(64, 64, (10, 10, 50, 50))
    items = [
        item("a", [21, 22], init_image=b64(picture(64, 64, 7)), mask=b64(m1)),
        item("b", [23], init_image=b64(picture(64, 64, 8)), mask=b64(m2)),
    ]
    common = {"mode": "inpaint", "steps": 3}
    together = only(run_call(worker_client, call_body(model, items=items, **common)))
    for it in items:
        alone = only(run_call(worker_client, call_body(model, items=[it], **common)))
        for key, event in alone.items():
            assert np.array_equal(pixels(event), pixels(together[key])), key


def test_inpaint_only_masked_works_on_a_crop_and_pastes_it_back(worker_client: TestClient) -> None:
    source = picture(128, 128, 9)
    mask = square_mask(128, 128, (90, 90, 105, 105))
    body = call_body(
        mode="inpaint",
        width=128,
        height=128,
        mask_blur=2,
        inpaint_only_masked=True,
        inpaint_padding=8,
        items=[
            item("a", [31], init_image=b64(source), mask=b64(mask)),
            item("b", [32], init_image=b64(source), mask=b64(square_mask(128, 128, (4, 4, 20, 20)))),
        ],
    )
    found = only(run_call(worker_client, body))
    result, original = pixels(found[("a", 0)]), np.asarray(source)
    assert result.shape == (128, 128, 3)
    assert np.array_equal(result[:80], original[:80]) and np.array_equal(result[:, :80], original[:, :80])
    assert not np.array_equal(result[92:104, 92:104], original[92:104, 92:104])
    # Each item's crop is its own mask's: item b's far corner is untouched.
    b = pixels(found[("b", 0)])
    assert np.array_equal(b[40:], original[40:]) and not np.array_equal(b[6:18, 6:18], original[6:18, 6:18])
    assert found[("a", 0)].metadata["inpaint_only_masked"] is True


@pytest.mark.parametrize("sampler", ["euler_a", "dpmpp_sde"])
def test_only_masked_images_equal_the_same_seed_alone(worker_client: TestClient, sampler: str) -> None:
    # One image at a time, each with its own seed's noise (SDE samplers seed their Brownian noise per image).
    source, mask = b64(picture(64, 64, 16)), b64(square_mask(64, 64, (10, 10, 40, 40)))
    common = {"mode": "inpaint", "inpaint_only_masked": True, "sampler": sampler, "steps": 3}
    batch = only(
        run_call(worker_client, call_body(**common, items=[item("j", [101, 102], init_image=source, mask=mask)]))
    )
    single = only(run_call(worker_client, call_body(**common, items=[item("j", [102], init_image=source, mask=mask)])))
    assert np.array_equal(pixels(batch[("j", 1)]), pixels(single[("j", 0)]))


def test_only_masked_previews_follow_the_first_live_item(worker_client: TestClient, hold: Hold) -> None:
    # "Only masked" runs one image at a time. Item a is held at its first step and dropped, so the first
    # live item becomes b, whose images are rows 1 and 2 of the call but row 0 of their own runs.
    source = b64(picture(64, 64, 14))
    mask = b64(square_mask(64, 64, (8, 8, 30, 30)))
    items = [
        {**item("a", [33], init_image=source, mask=mask), "prompt": hold.prompt("a held face")},
        item("b", [34, 35], init_image=source, mask=mask),
    ]
    body = call_body(
        mode="inpaint", inpaint_only_masked=True, previews=True, steps=4, call_id="masked-previews", items=items
    )
    streamer = _start(worker_client, body)
    assert worker_client.post("/v1/generate/masked-previews/cancel", json={"job_id": "a"}).status_code == 200
    streamer.join(120)
    kinds = [e.type for e in streamer.events]
    assert kinds[-1] == "done", streamer.events[-1]
    assert sorted(images(streamer.events)) == [("b", 0), ("b", 1)]
    later = [e for e in streamer.events[kinds.index("item_cancelled") :] if e.type == "progress"]
    assert len(later) >= 2 * 3 and all(e.preview and e.job_ids == ["b"] for e in later)


@pytest.mark.parametrize("model", MODELS)
def test_outpaint_grows_the_canvas_with_the_original_in_place(worker_client: TestClient, model: str) -> None:
    source = picture(64, 64, 10)
    body = call_body(
        model,
        mode="outpaint",
        denoising_strength=1.0,
        outpaint={"left": 16, "top": 8, "right": 0, "bottom": 24},
        items=[item("j", [41], init_image=b64(source))],
    )
    out = only(run_call(worker_client, body))[("j", 0)]
    result = pixels(out)
    assert result.shape == (8 + 64 + 24, 16 + 64, 3)
    assert np.array_equal(result[8:72, 16:80], np.asarray(source))
    assert out.metadata["width"] == 80 and out.metadata["height"] == 96
    assert "Size: 80x96" in out.infotext


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    ("hires", "size", "words"),
    [
        ({"scale": 2, "upscaler": "latent"}, (128, 128), ["Hires upscale: 2", "Hires upscaler: Latent"]),
        (
            {"width": 96, "upscaler": "lanczos", "steps": 3, "denoising_strength": 0.5},
            (96, 96),
            ["Hires resize: 96x96", "Hires steps: 3", "Hires upscaler: Lanczos", "Denoising strength: 0.5"],
        ),
    ],
)
def test_hires_returns_the_scaled_size_and_says_so(
    worker_client: TestClient, model: str, hires: dict[str, Any], size: tuple[int, int], words: list[str]
) -> None:
    items = [item("a", [51, 52]), item("b", [53])]
    together = only(run_call(worker_client, call_body(model, hires=hires, items=items)))
    for event in together.values():
        assert pixels(event).shape == (size[1], size[0], 3)
        assert "Size: 64x64" in event.infotext and all(w in event.infotext for w in words), event.infotext
    alone = only(run_call(worker_client, call_body(model, hires=hires, items=[items[1]])))
    assert np.array_equal(pixels(alone[("b", 0)]), pixels(together[("b", 0)]))


def test_hires_with_no_second_pass_step_is_the_upscaled_first_pass(worker_client: TestClient) -> None:
    base = only(run_call(worker_client, call_body(items=[item("j", [61])])))[("j", 0)]
    hires = {"scale": 2, "upscaler": "nearest", "denoising_strength": 0.0}
    up = only(run_call(worker_client, call_body(hires=hires, items=[item("j", [61])])))[("j", 0)]
    expected = np.asarray(Image.fromarray(pixels(base)).resize((128, 128), Image.Resampling.NEAREST))
    assert np.array_equal(pixels(up), expected)


def _png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header for a huge image followed by a little compressed data: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 2_000_000, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _truncated_jpeg() -> str:
    buf = io.BytesIO()
    picture(64, 64).save(buf, format="JPEG")
    return base64.b64encode(buf.getvalue()[: len(buf.getvalue()) // 2]).decode()


GOOD = b64(picture(64, 64))
BAD: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "text named png",
        call_body(mode="img2img", items=[item("j", [1], init_image=base64.b64encode(b"hello, not an image").decode())]),
        "items.0.init_image",
        "not a PNG, JPEG or WebP",
    ),
    (
        "decompression bomb",
        call_body(
            mode="img2img", items=[item("j", [1], init_image=base64.b64encode(_png_claiming(50000, 50000)).decode())]
        ),
        "items.0.init_image",
        "2500000000 pixels",
    ),
    (
        "over the pixel limit",
        call_body(
            mode="img2img", items=[item("j", [1], init_image=base64.b64encode(_png_claiming(5000, 5000)).decode())]
        ),
        "items.0.init_image",
        "5000x5000 pixels; the limit is 16777216",
    ),
    (
        "truncated jpeg",
        call_body(mode="img2img", items=[item("j", [1], init_image=_truncated_jpeg())]),
        "items.0.init_image",
        "truncated",
    ),
    ("not base64", call_body(mode="img2img", items=[item("j", [1], init_image="@@@")]), "items.0.init_image", "base64"),
    (
        "strength 1.5",
        call_body(mode="img2img", denoising_strength=1.5, items=[item("j", [1], init_image=GOOD)]),
        "denoising_strength",
        "less than or equal to 1",
    ),
    ("img2img without image", call_body(mode="img2img"), "items.0.init_image", "needs one"),
    ("init image for txt2img", call_body(items=[item("j", [1], init_image=GOOD)]), "items.0.init_image", "only"),
    (
        "inpaint without mask",
        call_body(mode="inpaint", items=[item("j", [1], init_image=GOOD)]),
        "items.0.mask",
        "needs",
    ),
    (
        "bad mask",
        call_body(mode="inpaint", items=[item("j", [1], init_image=GOOD, mask=_truncated_jpeg())]),
        "items.0.mask",
        "truncated",
    ),
    (
        "outpaint without borders",
        call_body(mode="outpaint", items=[item("j", [1], init_image=GOOD)]),
        "outpaint",
        "border",
    ),
    (
        "outpaint border not multiple of 8",
        call_body(mode="outpaint", outpaint={"left": 5}, items=[item("j", [1], init_image=GOOD)]),
        "outpaint.left",
        "multiple of 8",
    ),
    (
        "latent fill with only masked",
        call_body(
            mode="inpaint",
            inpaint_only_masked=True,
            inpainting_fill="latent_noise",
            items=[item("j", [1], init_image=GOOD, mask=GOOD)],
        ),
        "inpainting_fill",
        "not with inpaint_only_masked",
    ),
    (
        "unknown fill",
        call_body(mode="inpaint", inpainting_fill="paint", items=[item("j", [1], init_image=GOOD, mask=GOOD)]),
        "inpainting_fill",
        "latent_nothing",
    ),
    ("hires unknown upscaler", call_body(hires={"scale": 2, "upscaler": "4x-magic"}), "hires.upscaler", "4x-magic"),
    ("hires too large", call_body(width=1536, hires={"scale": 2}), "hires", "at most 2048"),
    ("hires too small", call_body(height=512, hires={"height": 256}), "hires", "at least 64"),
    (
        "hires on img2img",
        call_body(mode="img2img", hires={"scale": 2}, items=[item("j", [1], init_image=GOOD)]),
        "hires",
        "txt2img",
    ),
    (
        "latent hires without a step",
        call_body(hires={"scale": 2, "denoising_strength": 0.1}),
        "hires.denoising_strength",
        "at least one",
    ),
]


@pytest.mark.parametrize(("case", "body", "field", "words"), BAD, ids=[c for c, *_ in BAD])
def test_bad_image_input_is_400_naming_the_field(
    worker_client: TestClient, case: str, body: dict[str, Any], field: str, words: str
) -> None:
    resp = worker_client.post("/v1/generate", json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_request"
    assert field in [d["field"] for d in error["details"]], error
    assert words in error["message"], error["message"]


def test_info_lists_modes_and_upscalers(worker_client: TestClient) -> None:
    info = worker_client.get("/v1/info").json()
    assert info["modes"] == ["txt2img", "img2img", "inpaint", "outpaint"]
    assert info["upscalers"] == ["latent", "lanczos", "nearest"]


def test_resize_modes_crop_and_fill_as_a1111() -> None:
    # A 2:1 picture into a square: crop covers and centre-crops; fill fits inside and stretches the edge rows
    # into the bands above and below (A1111's resize_mode 1 and 2).
    from ablerefusal.protocol import ResizeMode
    from ablerefusal.worker.engine.modes.inputs import fit_image

    source = picture(128, 64)
    cropped = np.asarray(fit_image(source, 64, 64, ResizeMode.crop))
    assert np.array_equal(cropped, np.asarray(source.crop((32, 0, 96, 64))))

    filled = np.asarray(fit_image(source, 64, 64, ResizeMode.fill), np.int16)
    inside = np.asarray(source.resize((64, 32), Image.Resampling.LANCZOS), np.int16)
    assert np.array_equal(filled[16:48], inside)
    top, bottom = filled[:16], filled[48:]
    assert (top == top[0]).all() and (bottom == bottom[0]).all()  # each band repeats one row
    assert np.abs(top[0] - inside[0]).max() <= 2 and np.abs(bottom[0] - inside[-1]).max() <= 2

    stretched = fit_image(source, 64, 64, ResizeMode.resize)
    assert np.array_equal(np.asarray(stretched), np.asarray(source.resize((64, 64), Image.Resampling.LANCZOS)))
