"""OpenAI edits and variations → jobs, the masks of both compat APIs, and the refusals that need no worker."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from pydantic import ValidationError

from ablerefusal.gateway.compat.errors import CompatFieldError
from ablerefusal.gateway.compat.inputs import a1111_mask, check_a1111, check_openai, openai_mask
from ablerefusal.gateway.compat.openai_edit_models import EditForm, VariationForm
from ablerefusal.gateway.compat.openai_edit_translate import (
    auto_size,
    edit_request,
    stored_prompts,
    variation_prompts,
    variation_request,
)
from ablerefusal.gateway.storage.local import LocalObjectStore
from ablerefusal.gateway.uploads import UploadService
from ablerefusal.protocol import ModelFamily, ModelFormat, ModelInfo, ResizeMode

MODEL = ModelInfo(id="tiny", name="Tiny", family=ModelFamily.sd15, format=ModelFormat.diffusers)
UPLOAD_ID = "a" * 64
MASK_ID = "b" * 64


def _png(image: Image.Image, parameters: str | None = None) -> bytes:
    buf = io.BytesIO()
    meta = None
    if parameters is not None:
        meta = PngInfo()
        meta.add_text("parameters", parameters)
    image.save(buf, format="PNG", pnginfo=meta)
    return buf.getvalue()


def _uploads(tmp_path: Path) -> UploadService:
    return UploadService(LocalObjectStore(tmp_path / "inputs"), max_bytes=1_000_000, max_pixels=512 * 512)


# --- forms ----------------------------------------------------------------------------------------------


def test_edit_form_reads_form_strings() -> None:
    form = EditForm.model_validate(
        {"prompt": "a hat", "n": "2", "size": "64x64", "seed": "5", "denoising_strength": "0.5", "stream": "false"}
    )
    assert (form.n, form.seed, form.denoising_strength, form.stream) == (2, 5, 0.5, False)


@pytest.mark.parametrize(
    ("fields", "where", "kind"),
    [
        ({"prompt": ""}, "prompt", "string_too_short"),
        ({"prompt": "x", "n": "5"}, "n", "less_than_equal"),
        ({"prompt": "x", "response_format": "jpeg"}, "response_format", "literal_error"),
        ({"prompt": "x", "stream": "true"}, "stream", "value_error"),
        ({"prompt": "x", "frame_count": "3"}, "frame_count", "extra_forbidden"),
        ({"prompt": "x", "seed": "4294967295", "n": "2"}, "seed", "value_error"),
        ({"prompt": "x", "mask_blur": "65"}, "mask_blur", "less_than_equal"),
    ],
)
def test_edit_form_refusals_name_the_field(fields: dict[str, str], where: str, kind: str) -> None:
    with pytest.raises(ValidationError) as err:
        EditForm.model_validate(fields)
    first = err.value.errors()[0]
    assert first["loc"] == (where,) and first["type"] == kind


def test_variation_form_has_no_mask_or_prompt_requirement() -> None:
    assert VariationForm.model_validate({}).prompt is None
    with pytest.raises(ValidationError):
        VariationForm.model_validate({"mask_blur": "4"})


# --- translation ----------------------------------------------------------------------------------------


def test_edit_with_mask_redraws_the_masked_area() -> None:
    form = EditForm.model_validate({"prompt": "a hat", "n": "2", "seed": "9", "steps": "3", "mask_blur": "0"})
    job = edit_request(form, MODEL, (96, 64), UPLOAD_ID, MASK_ID)
    assert (job.init_image, job.mask, job.denoising_strength, job.mask_blur) == (UPLOAD_ID, MASK_ID, 1.0, 0)
    assert (job.width, job.height, job.batch_size, job.seed, job.steps, job.model) == (96, 64, 2, 9, 3, "tiny")
    assert job.resize_mode is ResizeMode.resize and job.prompt == "a hat"


def test_edit_without_mask_and_explicit_size_and_strength() -> None:
    form = EditForm.model_validate({"prompt": "a hat", "size": "128x64"})
    job = edit_request(form, MODEL, (96, 64), UPLOAD_ID, None)
    assert (job.mask, job.denoising_strength, job.width, job.height, job.mask_blur) == (None, 0.75, 128, 64, 4)
    form = EditForm.model_validate({"prompt": "a hat", "denoising_strength": "0.3", "size": "auto"})
    job = edit_request(form, MODEL, (96, 64), UPLOAD_ID, MASK_ID)
    assert (job.denoising_strength, job.width, job.height) == (0.3, 96, 64)
    with pytest.raises(CompatFieldError) as err:
        edit_request(EditForm.model_validate({"prompt": "x", "size": "100x100"}), MODEL, (64, 64), UPLOAD_ID, None)
    assert err.value.field == "size"


@pytest.mark.parametrize(
    ("size", "fitted"),
    [((64, 64), (64, 64)), ((100, 50), (96, 64)), ((4096, 1024), (2048, 512)), ((20, 3000), (64, 2048))],
)
def test_auto_size(size: tuple[int, int], fitted: tuple[int, int]) -> None:
    assert auto_size(*size) == fitted


def test_variation_prompts_come_from_the_form_or_the_image() -> None:
    ours = _png(Image.new("RGB", (8, 8)), "a red fox\nNegative prompt: blur\nSteps: 2, Sampler: Euler, Seed: 3")
    stored = stored_prompts(ours)
    assert stored is not None and (stored.prompt, stored.negative_prompt) == ("a red fox", "blur")
    form = VariationForm.model_validate({"n": "1"})
    assert variation_prompts(form, ours) == stored
    override = VariationForm.model_validate({"prompt": "a blue fox", "negative_prompt": "rain"})
    assert (variation_prompts(override, ours).prompt, variation_prompts(override, ours).negative_prompt) == (
        "a blue fox",
        "rain",
    )
    with pytest.raises(CompatFieldError) as err:
        variation_prompts(form, _png(Image.new("RGB", (8, 8))))
    assert err.value.field == "prompt"
    job = variation_request(form, MODEL, (64, 64), UPLOAD_ID, stored)
    assert (job.init_image, job.mask, job.denoising_strength, job.prompt) == (UPLOAD_ID, None, 0.6, "a red fox")


# --- masks ----------------------------------------------------------------------------------------------


def _rgba_with_hole(size: int = 16, alpha_inside: int = 0) -> Image.Image:
    image = Image.new("RGBA", (size, size), (10, 20, 30, 255))
    image.paste((0, 0, 0, alpha_inside), (4, 4, 12, 12))
    return image


def test_openai_mask_marks_the_transparent_area() -> None:
    grey = openai_mask(_rgba_with_hole(), "mask")
    assert grey.mode == "L" and grey.getpixel((8, 8)) == 255 and grey.getpixel((0, 0)) == 0
    with pytest.raises(CompatFieldError, match="alpha channel"):
        openai_mask(Image.new("RGB", (16, 16), "white"), "mask")
    with pytest.raises(CompatFieldError, match="nothing to edit"):
        openai_mask(Image.new("RGBA", (16, 16), (0, 0, 0, 255)), "mask")


def test_a1111_rgba_mask_counts_opaque_as_repaint() -> None:
    # A1111's create_binary_mask: the painted (opaque) strokes of an RGBA mask are what is repainted.
    strokes = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    strokes.paste((255, 0, 0, 200), (4, 4, 12, 12))
    grey = a1111_mask(strokes)
    assert grey.getpixel((8, 8)) == 255 and grey.getpixel((0, 0)) == 0
    plain = Image.new("RGB", (16, 16), "white")
    assert a1111_mask(plain) is plain


def test_check_openai_sizes_and_the_images_own_alpha(tmp_path: Path) -> None:
    uploads = _uploads(tmp_path)
    image = _png(Image.new("RGB", (16, 16), "red"))
    with pytest.raises(CompatFieldError) as err:
        check_openai(uploads, image, _png(_rgba_with_hole(32)))
    assert err.value.field == "mask" and "16x16" in err.value.message
    checked, mask = check_openai(uploads, _png(_rgba_with_hole()), None, "image[]")
    assert checked.field == "image[]" and mask is not None
    stored_mask = Image.open(io.BytesIO(mask.prepared.png))
    assert stored_mask.convert("L").getpixel((8, 8)) == 255 and stored_mask.convert("L").getpixel((0, 0)) == 0
    assert check_openai(uploads, image, None)[1] is None
    assert not (tmp_path / "inputs").exists() or not any((tmp_path / "inputs").iterdir())  # checked, not stored


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b"hello, not an image", "not a PNG, JPEG or WebP"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "broken or truncated JPEG"),
    ],
)
def test_check_openai_names_the_field_of_a_bad_image(tmp_path: Path, data: bytes, rule: str) -> None:
    with pytest.raises(CompatFieldError) as err:
        check_openai(_uploads(tmp_path), data, None)
    assert err.value.field == "image" and rule in err.value.message


def test_check_a1111_names_the_bad_image(tmp_path: Path) -> None:
    import base64

    good = base64.b64encode(_png(Image.new("RGB", (8, 8)))).decode()
    with pytest.raises(CompatFieldError) as err:
        check_a1111(_uploads(tmp_path), [good, "bm90IGFuIGltYWdl"], None)
    assert err.value.field == "init_images.1"
    with pytest.raises(CompatFieldError) as err:
        check_a1111(_uploads(tmp_path), [good], "%%%")
    assert err.value.field == "mask" and "base64" in err.value.message
    inits, mask = check_a1111(_uploads(tmp_path), [good, good], "data:image/png;base64," + good)
    assert list(inits) == [good] and mask is not None


# --- refusals before any worker is needed (real app, real store, no workers) ----------------------------


def _queue_total(client: TestClient) -> int:
    return sum(client.get("/api/v1/queue").json()["counts"].values())


def test_openai_edit_form_errors_are_openai_shaped(open_client: TestClient) -> None:
    png = _png(Image.new("RGB", (8, 8)))
    missing = open_client.post("/v1/images/edits", data={"prompt": "x"}, files={"mask": png})
    assert missing.status_code == 400
    assert (
        missing.json()["error"]["code"] == "missing_required_parameter"
        and "image" in missing.json()["error"]["message"]
    )
    unknown = open_client.post("/v1/images/edits", data={"prompt": "x", "frame_count": "2"}, files={"image": png})
    error = unknown.json()["error"]
    assert unknown.status_code == 400 and (error["param"], error["code"]) == ("frame_count", "unknown_parameter")
    bad_n = open_client.post("/v1/images/variations", data={"n": "9"}, files={"image": png})
    assert bad_n.status_code == 400 and bad_n.json()["error"]["param"] == "n"
    two = open_client.post("/v1/images/edits", data={"prompt": "x"}, files=[("image[]", png), ("image[]", png)])
    assert two.status_code == 400 and two.json()["error"]["param"] == "image"
    stray = open_client.post("/v1/images/variations", files={"image": png, "mask": png})
    assert stray.status_code == 400 and stray.json()["error"]["param"] == "mask"
    assert _queue_total(open_client) == 0


def test_a1111_img2img_body_errors_are_a1111_shaped(open_client: TestClient) -> None:
    response = open_client.post("/sdapi/v1/img2img", json={"prompt": "x", "init_images": ["QUFB"], "resize_mode": 7})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "resize_mode"]
    response = open_client.post("/sdapi/v1/img2img", json={"prompt": "x"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "init_images"]
    assert _queue_total(open_client) == 0
