"""Image inputs through the compatibility APIs, over real HTTP against a live gateway + CPU worker (tiny
SD 1.5): A1111 img2img (with and without a mask), txt2img's hires fix, the official ``openai`` client's
``images.edit`` and ``images.create_variation``, and bad inputs that must store nothing."""

from __future__ import annotations

import base64
import io
import json
import random
import re
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from compat_live import LiveGateway
from PIL import Image

pytestmark = pytest.mark.integration

SIZE = 64
UPLOAD_ID = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def http(live_gateway: LiveGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_gateway.url, auth=("a1111-user", live_gateway.api_key), timeout=300) as client:
        yield client


@pytest.fixture(scope="module")
def client(live_gateway: LiveGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_gateway.url}/v1", api_key=live_gateway.api_key, max_retries=0, timeout=300)


def _noise(seed: int, size: tuple[int, int] = (SIZE, SIZE)) -> Image.Image:
    """A picture with detail everywhere, so a changed pixel shows."""
    return Image.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _b64(image: Image.Image) -> str:
    return base64.b64encode(_png(image)).decode()


def _decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def _square_mask(box: tuple[int, int, int, int] = (16, 16, 48, 48)) -> Image.Image:
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, box)
    return mask


def _headers(gateway: LiveGateway) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.api_key}"}


def _queue_total(gateway: LiveGateway) -> int:
    counts = httpx.get(f"{gateway.url}/api/v1/queue", headers=_headers(gateway)).json()["counts"]
    return int(sum(counts.values()))


def _stored_inputs(gateway: LiveGateway) -> set[Path]:
    folder = gateway.output_dir.parent / "inputs"
    return set(folder.rglob("*")) if folder.exists() else set()


def _job_requests(gateway: LiveGateway) -> list[dict[str, Any]]:
    listing = httpx.get(f"{gateway.url}/api/v1/generate", params={"limit": 200}, headers=_headers(gateway))
    return [item["request"] for item in listing.json()["items"]]


def _outside_equal(result: Image.Image, source: Image.Image, mask: Image.Image) -> tuple[bool, bool]:
    """(every pixel where the mask is black equals the source, some pixel where it is white changed)."""
    got = np.asarray(result.convert("RGB"))
    want = np.asarray(source.convert("RGB"))
    keep = np.asarray(mask) == 0
    return bool((got[keep] == want[keep]).all()), bool((got[~keep] != want[~keep]).any())


# --- A1111 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("only_masked", [False, True])
def test_a1111_inpainting_keeps_every_pixel_outside_the_mask(
    http: httpx.Client, live_gateway: LiveGateway, only_masked: bool
) -> None:
    source, mask = _noise(1), _square_mask()
    body = {
        "prompt": "a tiny red hat",
        "init_images": [_b64(source)],
        "mask": _b64(mask),
        "mask_blur": 0,
        "inpainting_fill": 1,
        "inpaint_full_res": only_masked,
        "inpaint_full_res_padding": 8,
        "denoising_strength": 0.75,
        "steps": 2,
        "width": SIZE,
        "height": SIZE,
        "seed": 31,
    }
    response = http.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    (image_b64,) = answer["images"]
    result = _decode(image_b64)
    assert result.size == (SIZE, SIZE)
    kept, changed = _outside_equal(result, source, mask)
    assert kept and changed
    info = json.loads(answer["info"])
    assert info["denoising_strength"] == 0.75 and info["extra_generation_params"]["Mask blur"] == 0
    assert info["all_seeds"] == [31]
    assert "Denoising strength: 0.75" in info["infotexts"][0] and "Mask blur: 0" in info["infotexts"][0]
    # A1111 leaves the images out of the echoed parameters unless include_init_images.
    assert answer["parameters"]["init_images"] is None and answer["parameters"]["mask"] is None
    # The job holds upload ids, never pixels, and the uploads serve the images sent.
    request = next(r for r in _job_requests(live_gateway) if r["seed"] == 31 and r["mask"] is not None)
    assert UPLOAD_ID.match(request["init_image"]) and UPLOAD_ID.match(request["mask"])
    served = httpx.get(f"{live_gateway.url}/api/v1/uploads/{request['init_image']}", headers=_headers(live_gateway))
    assert served.status_code == 200 and np.array_equal(
        np.asarray(Image.open(io.BytesIO(served.content))), np.asarray(source)
    )


def test_a1111_rgba_mask_repaints_its_opaque_strokes(http: httpx.Client) -> None:
    source = _noise(2)
    strokes = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    strokes.paste((255, 255, 255, 255), (8, 8, 24, 56))
    body = {
        "prompt": "a tiny blue door",
        "init_images": ["data:image/png;base64," + _b64(source)],
        "mask": _b64(strokes),
        "mask_blur": 0,
        "inpainting_fill": 1,
        "inpaint_full_res": False,
        "steps": 2,
        "width": SIZE,
        "height": SIZE,
        "seed": 5,
        "include_init_images": True,
    }
    response = http.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    kept, changed = _outside_equal(_decode(answer["images"][0]), source, _square_mask((8, 8, 24, 56)))
    assert kept and changed
    assert answer["parameters"]["init_images"] == body["init_images"] and answer["parameters"]["mask"] == body["mask"]


def test_a1111_img2img_several_init_images_and_resize(http: httpx.Client) -> None:
    wide = _noise(3, (96, 64))
    body = {
        "prompt": "a tiny boat",
        "init_images": [_b64(wide), _b64(_noise(4))],
        "batch_size": 2,
        "resize_mode": 1,
        "denoising_strength": 0.5,
        "steps": 2,
        "width": SIZE,
        "height": SIZE,
        "seed": 70,
    }
    response = http.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [(_decode(b).size) for b in answer["images"]] == [(SIZE, SIZE), (SIZE, SIZE)]
    info = json.loads(answer["info"])
    assert info["all_seeds"] == [70, 71] and info["batch_size"] == 2
    assert all("Denoising strength: 0.5" in text for text in info["infotexts"])


def test_a1111_strength_zero_returns_the_input(http: httpx.Client) -> None:
    source = _noise(6)
    body = {"prompt": "anything", "init_images": [_b64(source)], "denoising_strength": 0.0, "steps": 2,
            "width": SIZE, "height": SIZE}  # fmt: skip
    response = http.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 200, response.text
    assert np.array_equal(np.asarray(_decode(response.json()["images"][0]).convert("RGB")), np.asarray(source))


@pytest.mark.parametrize(
    ("fields", "size", "params"),
    [
        (
            {"hr_scale": 2, "hr_upscaler": "Lanczos", "denoising_strength": 0.5},
            (128, 128),
            {"Hires upscale": 2, "Hires upscaler": "Lanczos"},
        ),
        (
            {"hr_resize_x": 96, "hr_upscaler": "Latent", "hr_second_pass_steps": 2, "denoising_strength": 0.6},
            (96, 96),
            {"Hires resize": "96x0", "Hires steps": 2, "Hires upscaler": "Latent"},
        ),
    ],
)
def test_a1111_txt2img_hires_returns_the_scaled_size(
    http: httpx.Client, fields: dict[str, Any], size: tuple[int, int], params: dict[str, Any]
) -> None:
    body = {
        "prompt": "a tiny castle",
        "enable_hr": True,
        "steps": 2,
        "width": SIZE,
        "height": SIZE,
        "seed": 8,
        **fields,
    }
    response = http.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert _decode(answer["images"][0]).size == size
    info = json.loads(answer["info"])
    assert info["extra_generation_params"] | params == info["extra_generation_params"]
    assert info["denoising_strength"] == fields["denoising_strength"]
    infotext = info["infotexts"][0]
    assert f"Denoising strength: {fields['denoising_strength']:g}" in infotext and "Hires upscaler" in infotext


def test_a1111_upscaler_lists(http: httpx.Client) -> None:
    names = [u["name"] for u in http.get("/sdapi/v1/upscalers").json()]
    assert names[:3] == ["None", "Lanczos", "Nearest"]
    assert http.get("/sdapi/v1/latent-upscale-modes").json() == [{"name": "Latent"}]


def _truncated_jpeg() -> str:
    buf = io.BytesIO()
    _noise(9).save(buf, format="JPEG")
    return base64.b64encode(buf.getvalue()[:200]).decode()


def _bomb_png() -> str:
    """A PNG of a few bytes whose header claims 50000x50000 pixels (a decompression bomb's header)."""
    small = io.BytesIO()
    Image.new("L", (1, 1)).save(small, format="PNG")
    data = bytearray(small.getvalue())
    # IHDR sits right after the 8-byte signature: length, type, width, height, …, then its CRC.
    data[16:24] = struct.pack(">II", 50000, 50000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return base64.b64encode(bytes(data)).decode()


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"init_images": [base64.b64encode(b"just some text, named .png").decode()]}, ["body", "init_images", "0"]),
        ({"init_images": ["BOMB"]}, ["body", "init_images", "0"]),
        ({"init_images": ["JPEG"]}, ["body", "init_images", "0"]),
        ({"mask": "not base64 at all!"}, ["body", "mask"]),
        ({"denoising_strength": 1.5}, ["body", "denoising_strength"]),
        ({"sampler_name": "Nope"}, ["body", "sampler_name"]),
    ],
)
def test_a1111_bad_inputs_are_422_and_store_nothing(
    http: httpx.Client, live_gateway: LiveGateway, fields: dict[str, Any], loc: list[str]
) -> None:
    body: dict[str, Any] = {"prompt": "x", "init_images": [_b64(_noise(10))], "steps": 2, "width": SIZE, "height": SIZE}
    body |= fields
    body["init_images"] = [{"BOMB": _bomb_png(), "JPEG": _truncated_jpeg()}.get(i, i) for i in body["init_images"]]
    before_inputs, before_queue = _stored_inputs(live_gateway), _queue_total(live_gateway)
    response = http.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc
    assert _stored_inputs(live_gateway) == before_inputs and _queue_total(live_gateway) == before_queue


def test_a1111_unknown_hr_upscaler_is_422_naming_it(http: httpx.Client, live_gateway: LiveGateway) -> None:
    before = _queue_total(live_gateway)
    body = {"prompt": "x", "enable_hr": True, "hr_upscaler": "Latent (nearest)", "steps": 2, "width": SIZE,
            "height": SIZE}  # fmt: skip
    response = http.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "hr_upscaler"] and "Lanczos" in detail["msg"]
    assert _queue_total(live_gateway) == before


# --- OpenAI ---------------------------------------------------------------------------------------------


def test_openai_images_edit_with_mask_keeps_the_opaque_pixels(client: openai.OpenAI, live_gateway: LiveGateway) -> None:
    source = _noise(11)
    mask = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (16, 24, 48, 40))  # transparent: the area to edit
    result = client.images.edit(
        image=("in.png", _png(source), "image/png"),
        mask=("mask.png", _png(mask), "image/png"),
        prompt="a tiny window",
        n=2,
        size="64x64",
        response_format="b64_json",
        extra_body={"steps": 2, "seed": 12, "mask_blur": 0},
    )
    assert result.data is not None and len(result.data) == 2
    for item in result.data:
        assert item.b64_json is not None and item.revised_prompt == "a tiny window"
        image = _decode(item.b64_json)
        assert image.size == (SIZE, SIZE)
        kept, changed = _outside_equal(image, source, _square_mask((16, 24, 48, 40)))
        assert kept and changed
        assert "Denoising strength: 1" in image.info["parameters"]


def test_openai_images_edit_as_image_array_without_mask(client: openai.OpenAI, live_gateway: LiveGateway) -> None:
    result = client.images.edit(
        image=[("in.png", _png(_noise(13, (80, 64))), "image/png")],
        prompt="a tiny tree",
        response_format="url",
        extra_body={"steps": 2, "denoising_strength": 0.5},
    )
    assert result.data is not None and len(result.data) == 1
    url = result.data[0].url
    assert url is not None and url.startswith(f"{live_gateway.url}/outputs/")
    fetched = httpx.get(url, headers=_headers(live_gateway))
    image = Image.open(io.BytesIO(fetched.content))
    assert image.size == (80, 64) and "Denoising strength: 0.5" in image.info["parameters"]


def test_openai_create_variation_of_an_image_made_here(client: openai.OpenAI, live_gateway: LiveGateway) -> None:
    made = client.images.generate(
        prompt="a tiny lighthouse",
        size="64x64",
        response_format="b64_json",
        extra_body={"steps": 2, "seed": 40},
    )
    assert made.data is not None and made.data[0].b64_json is not None
    original = base64.b64decode(made.data[0].b64_json)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # retired at OpenAI; served here
        varied = client.images.create_variation(
            image=("made.png", original, "image/png"),
            n=1,
            size="64x64",  # type: ignore[arg-type]  # any WxH here; OpenAI's list was 256/512/1024
            response_format="b64_json",
            extra_body={"steps": 2, "seed": 41},
        )
        assert varied.data is not None and varied.data[0].b64_json is not None
        # The prompt comes from the image's own parameters; the strength is the documented 0.6.
        assert varied.data[0].revised_prompt == "a tiny lighthouse"
        image = _decode(varied.data[0].b64_json)
        assert image.size == (SIZE, SIZE) and "Denoising strength: 0.6" in image.info["parameters"]
        with pytest.raises(openai.BadRequestError) as err:
            client.images.create_variation(image=("plain.png", _png(_noise(14)), "image/png"), extra_body={"steps": 2})
        assert err.value.body is not None and err.value.body["param"] == "prompt"  # type: ignore[index]
        prompted = client.images.create_variation(
            image=("plain.png", _png(_noise(14)), "image/png"),
            response_format="b64_json",
            extra_body={"steps": 2, "prompt": "a tiny cat"},
        )
        assert prompted.data is not None and prompted.data[0].revised_prompt == "a tiny cat"


def _rgba_hole(size: int) -> bytes:
    mask = Image.new("RGBA", (size, size), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 8, 8))
    return _png(mask)


@pytest.mark.parametrize(
    ("image", "mask", "param"),
    [
        (b"just some text, named .png", None, "image"),
        ("BOMB", None, "image"),
        ("JPEG", None, "image"),
        (None, _rgba_hole(32), "mask"),  # another size than the image
        (None, "RGB", "mask"),  # no alpha channel
    ],
)
def test_openai_bad_inputs_are_400_naming_the_param_and_store_nothing(
    client: openai.OpenAI, live_gateway: LiveGateway, image: bytes | str | None, mask: bytes | str | None, param: str
) -> None:
    named = {"BOMB": base64.b64decode(_bomb_png()), "JPEG": base64.b64decode(_truncated_jpeg())}
    image_bytes = named[image] if isinstance(image, str) else image
    mask_bytes = _png(Image.new("RGB", (SIZE, SIZE), "white")) if mask == "RGB" else mask
    before_inputs, before_queue = _stored_inputs(live_gateway), _queue_total(live_gateway)
    with pytest.raises(openai.BadRequestError) as err:
        client.images.edit(
            image=("in.png", image_bytes or _png(_noise(15)), "image/png"),
            mask=("mask.png", mask_bytes, "image/png") if isinstance(mask_bytes, bytes) else openai.omit,
            prompt="x",
            extra_body={"steps": 2},
        )
    body = err.value.body
    assert isinstance(body, dict) and body["param"] == param and body["type"] == "invalid_request_error"
    assert _stored_inputs(live_gateway) == before_inputs and _queue_total(live_gateway) == before_queue
