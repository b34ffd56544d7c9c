"""A1111 img2img and the hires fix → jobs, field by field (pure translation; the live module runs them)."""

from __future__ import annotations

import random
from datetime import datetime

import pytest
from pydantic import ValidationError

from ablerefusal.gateway.compat.a1111_hires import (
    accepted_names,
    latent_mode_items,
    plan_hires,
    resolve_upscaler,
    upscaler_items,
)
from ablerefusal.gateway.compat.a1111_img2img import plan_img2img
from ablerefusal.gateway.compat.a1111_models import Img2ImgRequest, Txt2ImgRequest
from ablerefusal.gateway.compat.a1111_translate import A1111Plan, build_info, plan_txt2img
from ablerefusal.gateway.compat.errors import CompatFieldError
from ablerefusal.gateway.schemas import JobResult
from ablerefusal.protocol import InpaintingFill, ModelFamily, ModelFormat, ModelInfo, ResizeMode
from ablerefusal.samplers import SAMPLERS

MODEL = ModelInfo(id="tiny", name="Tiny", family=ModelFamily.sd15, format=ModelFormat.diffusers)
IMG_A = "data:image/png;base64,QUFB"
IMG_B = "QkJC"
MASK = "TU1N"


def _img2img(**fields: object) -> tuple[Img2ImgRequest, A1111Plan]:
    req = Img2ImgRequest.model_validate({"prompt": "a fox", "init_images": [IMG_A], **fields})
    return req, plan_img2img(req, SAMPLERS, [MODEL], MODEL, random.Random(3))


def _txt2img(**fields: object) -> A1111Plan:
    req = Txt2ImgRequest.model_validate({"prompt": "a fox", "width": 64, "height": 64, **fields})
    return plan_txt2img(req, SAMPLERS, [MODEL], MODEL, random.Random(3), ("latent", "lanczos", "nearest"))


# --- img2img -------------------------------------------------------------------------------------------


def test_defaults_are_a1111s_image_to_image() -> None:
    req, plan = _img2img(seed=10, batch_size=2, n_iter=2, steps=3, width=64, height=96)
    assert [j.seed for j in plan.jobs] == [10, 12] and plan.seeds == [10, 11, 12, 13]
    for job in plan.jobs:
        assert (job.init_image, job.batch_size, job.width, job.height, job.steps) == (IMG_A, 2, 64, 96, 3)
        assert job.denoising_strength == 0.75 and job.resize_mode is ResizeMode.resize
        assert job.mask is None and job.hires is None
    assert req.include_init_images is False and plan.denoising_strength == 0.75 and plan.extra_params == {}


@pytest.mark.parametrize(
    ("number", "mode"),
    [(0, ResizeMode.resize), (1, ResizeMode.crop), (2, ResizeMode.fill), (3, ResizeMode.resize)],
)
def test_resize_modes(number: int, mode: ResizeMode) -> None:
    _, plan = _img2img(resize_mode=number, denoising_strength=0.3)
    assert plan.jobs[0].resize_mode is mode and plan.jobs[0].denoising_strength == 0.3


@pytest.mark.parametrize(
    ("number", "fill"),
    [
        (0, InpaintingFill.fill),
        (1, InpaintingFill.original),
        (2, InpaintingFill.latent_noise),
        (3, InpaintingFill.latent_nothing),
    ],
)
def test_inpainting_fill_numbers(number: int, fill: InpaintingFill) -> None:
    _, plan = _img2img(mask=MASK, inpainting_fill=number, inpaint_full_res=False)
    assert plan.jobs[0].inpainting_fill is fill


def test_mask_fields() -> None:
    _, plan = _img2img(
        mask=MASK, mask_blur=6, inpaint_full_res=True, inpaint_full_res_padding=24, inpainting_mask_invert=1
    )
    job = plan.jobs[0]
    assert (job.mask, job.mask_blur, job.inpaint_only_masked, job.inpaint_padding, job.mask_invert) == (
        MASK,
        6,
        True,
        24,
        True,
    )
    # A1111's defaults: fill 0 ("fill"), "only masked" on, no padding, blur 4.
    _, plan = _img2img(mask=MASK)
    job = plan.jobs[0]
    assert (job.inpainting_fill, job.inpaint_only_masked, job.inpaint_padding, job.mask_blur) == (
        InpaintingFill.fill,
        True,
        0,
        4,
    )
    assert plan.extra_params == {"Mask blur": 4}


def test_inpaint_fields_without_a_mask_change_nothing() -> None:
    _, plan = _img2img(mask="", inpainting_fill=2, inpaint_full_res=True, mask_blur=9, inpainting_mask_invert=1)
    job = plan.jobs[0]
    assert job.mask is None and job.mask_blur == 4 and job.mask_invert is False and not job.inpaint_only_masked


def test_mask_blur_x_and_y() -> None:
    assert _img2img(mask=MASK, mask_blur_x=7, mask_blur_y=7)[1].jobs[0].mask_blur == 7
    assert _img2img(mask=MASK, mask_blur=2, mask_blur_x=7, mask_blur_y=9)[1].jobs[0].mask_blur == 2
    with pytest.raises(CompatFieldError) as err:
        _img2img(mask=MASK, mask_blur_x=7, mask_blur_y=9)
    assert err.value.field == "mask_blur_y"


def test_latent_fills_with_only_masked_are_refused_naming_inpainting_fill() -> None:
    with pytest.raises(CompatFieldError) as err:
        _img2img(mask=MASK, inpainting_fill=2)
    assert err.value.field == "inpainting_fill" and "inpaint_full_res" in err.value.message
    assert _img2img(mask=MASK, inpainting_fill=3, inpaint_full_res=False)[1].jobs[0].inpainting_fill is (
        InpaintingFill.latent_nothing
    )


def test_several_init_images_give_one_image_each_per_iteration() -> None:
    req, plan = _img2img(init_images=[IMG_A, IMG_B], batch_size=4, n_iter=2, seed=100)
    assert [(j.init_image, j.seed, j.batch_size) for j in plan.jobs] == [
        (IMG_A, 100, 1),
        (IMG_B, 101, 1),
        (IMG_A, 102, 1),
        (IMG_B, 103, 1),
    ]
    assert plan.seeds == [100, 101, 102, 103]
    results = [JobResult(image_url=f"/outputs/j/{i}.png", seed=100 + i, index=0) for i in range(4)]
    assert build_info(req, plan, results, datetime(2024, 1, 1))["batch_size"] == 2


def test_more_init_images_than_batch_size_is_refused() -> None:
    with pytest.raises(CompatFieldError) as err:
        _img2img(init_images=[IMG_A, IMG_B, IMG_A], batch_size=2)
    assert err.value.field == "init_images"


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"init_images": ["https://example.com/a.png"]}, "init_images.0"),
        ({"init_images": [IMG_A, "  "], "batch_size": 2}, "init_images.1"),
        ({"mask": "http://example.com/m.png"}, "mask"),
    ],
)
def test_urls_and_empty_images_are_refused(fields: dict[str, object], where: str) -> None:
    with pytest.raises(CompatFieldError) as err:
        _img2img(**fields)
    assert err.value.field == where


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("init_images", []),
        ("denoising_strength", 1.5),
        ("resize_mode", 4),
        ("inpainting_fill", 4),
        ("mask_blur", 65),
        ("inpainting_mask_invert", 2),
        ("inpaint_full_res_padding", -1),
    ],
)
def test_out_of_range_img2img_fields_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as err:
        Img2ImgRequest.model_validate({"prompt": "x", "init_images": [IMG_A], field: value})
    assert err.value.errors()[0]["loc"][0] == field


def test_missing_init_images_is_refused() -> None:
    with pytest.raises(ValidationError) as err:
        Img2ImgRequest.model_validate({"prompt": "x"})
    assert err.value.errors()[0]["loc"] == ("init_images",)


def test_img2img_info_reports_strength_and_mask_blur() -> None:
    req, plan = _img2img(mask=MASK, mask_blur=3, denoising_strength=0.4, seed=1)
    results = [JobResult(image_url="/outputs/j/0.png", seed=1, index=0, infotext="x")]
    info = build_info(req, plan, results, datetime(2024, 1, 1))
    assert info["denoising_strength"] == 0.4 and info["extra_generation_params"]["Mask blur"] == 3


def test_unsupported_a1111_img2img_fields_are_accepted_and_echoed() -> None:
    req, _ = _img2img(initial_noise_multiplier=0.9, image_cfg_scale=1.5, latent_mask=None)
    assert req.model_dump()["initial_noise_multiplier"] == 0.9


# --- hires fix ------------------------------------------------------------------------------------------


def test_without_enable_hr_the_hr_fields_are_ignored_even_when_out_of_range() -> None:
    plan = _txt2img(hr_scale=0.5, hr_upscaler="nonsense", hr_resize_x=13)
    assert plan.jobs[0].hires is None and plan.denoising_strength is None and plan.extra_params == {}


def test_enable_hr_defaults_are_a1111s() -> None:
    plan = _txt2img(enable_hr=True, steps=4)
    hires = plan.jobs[0].hires
    assert hires is not None
    assert (hires.scale, hires.width, hires.height, hires.upscaler, hires.steps, hires.denoising_strength) == (
        2.0,
        None,
        None,
        "latent",
        None,
        0.75,
    )
    assert plan.extra_params == {"Hires upscale": 2.0} and plan.denoising_strength == 0.75


def test_enable_hr_fields() -> None:
    plan = _txt2img(
        enable_hr=True,
        hr_scale=1.5,
        hr_upscaler="Nearest",
        hr_second_pass_steps=3,
        denoising_strength=0.4,
        steps=2,
    )
    hires = plan.jobs[0].hires
    assert hires is not None and (hires.scale, hires.upscaler, hires.steps, hires.denoising_strength) == (
        1.5,
        "nearest",
        3,
        0.4,
    )
    assert plan.extra_params == {"Hires upscale": 1.5, "Hires steps": 3, "Hires upscaler": "Nearest"}


def test_hr_resize_wins_over_hr_scale() -> None:
    plan = _txt2img(enable_hr=True, hr_scale=3, hr_resize_x=128, hr_resize_y=0, hr_upscaler="Lanczos")
    hires = plan.jobs[0].hires
    assert hires is not None and (hires.scale, hires.width, hires.height) == (None, 128, None)
    assert plan.extra_params["Hires resize"] == "128x0"
    req = Txt2ImgRequest.model_validate({"prompt": "x", "width": 64, "height": 96, "enable_hr": True,
                                         "hr_resize_x": 128, "hr_upscaler": "Lanczos"})  # fmt: skip
    found = plan_hires(req, ())
    assert found is not None and found.size == (128, 192)


@pytest.mark.parametrize(
    ("name", "ours"),
    [
        (None, "latent"),
        ("Latent", "latent"),
        ("latent", "latent"),
        ("Lanczos", "lanczos"),
        ("LANCZOS", "lanczos"),
        ("Nearest", "nearest"),
        ("None", "lanczos"),  # A1111's "None" resizes with Lanczos (images.resize_image)
        ("4x-ultrasharp", "4x-UltraSharp"),
    ],
)
def test_upscaler_names(name: str | None, ours: str) -> None:
    assert resolve_upscaler(name, ["latent", "lanczos", "nearest", "4x-UltraSharp"]) == ours


@pytest.mark.parametrize("name", ["Latent (nearest)", "Latent (bicubic antialiased)", "ESRGAN_4x", "R-ESRGAN 4x+"])
def test_upscalers_we_do_not_run_are_refused_naming_hr_upscaler(name: str) -> None:
    with pytest.raises(CompatFieldError) as err:
        _txt2img(enable_hr=True, hr_upscaler=name)
    assert err.value.field == "hr_upscaler" and err.value.available == ["Latent", "None", "Lanczos", "Nearest"]
    assert ("plain 'Latent'" in err.value.message) == name.startswith("Latent")


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"hr_scale": 1.0}, "hr_scale"),
        ({"hr_scale": 4.5}, "hr_scale"),
        ({"hr_resize_x": 100}, "hr_resize_x"),
        ({"hr_resize_y": 4096}, "hr_resize_y"),
        ({"hr_second_pass_steps": 151}, "hr_second_pass_steps"),
        ({"width": 1024, "height": 1024, "hr_scale": 2.5}, "hr_scale"),
        ({"hr_resize_x": 2048, "width": 64, "height": 128}, "hr_resize_x"),
        ({"steps": 2, "denoising_strength": 0.4}, "denoising_strength"),  # latent: int(2 x 0.4) = 0 steps
    ],
)
def test_bad_hires_fields_name_the_field(fields: dict[str, object], where: str) -> None:
    with pytest.raises(CompatFieldError) as err:
        _txt2img(enable_hr=True, **fields)
    assert err.value.field == where


def test_a_pixel_upscaler_needs_no_second_pass() -> None:
    plan = _txt2img(enable_hr=True, steps=2, denoising_strength=0.0, hr_upscaler="Lanczos")
    assert plan.jobs[0].hires is not None and plan.jobs[0].hires.denoising_strength == 0.0


def test_hires_info() -> None:
    req = Txt2ImgRequest.model_validate(
        {"prompt": "x", "width": 64, "height": 64, "enable_hr": True, "hr_upscaler": "Lanczos", "seed": 3}
    )
    plan = plan_txt2img(req, SAMPLERS, [MODEL], MODEL, random.Random(1))
    info = build_info(req, plan, [JobResult(image_url="/outputs/j/0.png", seed=3, index=0)], datetime(2024, 1, 1))
    assert info["denoising_strength"] == 0.75
    assert info["extra_generation_params"] == {"Hires upscale": 2.0, "Hires upscaler": "Lanczos"}
    assert (info["width"], info["height"]) == (64, 64)  # A1111 reports the first pass's size


def test_upscaler_lists_are_a1111_shaped() -> None:
    items = upscaler_items(["latent", "lanczos", "nearest", "4x-UltraSharp"])
    assert [(i.name, i.model_name, i.model_path, i.scale) for i in items] == [
        ("None", None, None, 4.0),
        ("Lanczos", None, None, 4.0),
        ("Nearest", None, None, 4.0),
        ("4x-UltraSharp", "4x-UltraSharp", None, None),
    ]
    assert [m.name for m in latent_mode_items()] == ["Latent"]
    assert accepted_names(["latent"]) == ["Latent", "None", "Lanczos", "Nearest"]
