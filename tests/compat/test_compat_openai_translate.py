"""OpenAI images request → one job."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ablerefusal.gateway.compat.errors import CompatError, CompatFieldError
from ablerefusal.gateway.compat.openai_models import ImagesRequest
from ablerefusal.gateway.compat.openai_translate import parse_size, pick_model, to_generate_request
from ablerefusal.protocol import ModelFamily, ModelFormat, ModelInfo

MODELS = [
    ModelInfo(id="sd", name="SD", family=ModelFamily.sd15, format=ModelFormat.diffusers, default_size=512),
    ModelInfo(id="xl", name="XL", family=ModelFamily.sdxl, format=ModelFormat.diffusers, default_size=1024),
]


@pytest.mark.parametrize(
    ("size", "expected"),
    [("64x128", (64, 128)), ("1024x1024", (1024, 1024)), (None, (512, 512)), ("auto", (512, 512))],
)
def test_sizes(size: str | None, expected: tuple[int, int]) -> None:
    assert parse_size(size, 512) == expected


@pytest.mark.parametrize("size", ["513x512", "32x32", "4096x64", "512", "512x512x3", "big", "1024X1024"])
def test_bad_sizes_name_the_size_field(size: str) -> None:
    with pytest.raises(CompatFieldError) as err:
        parse_size(size, 512)
    assert err.value.field == "size" and "multiples of 8" in err.value.message


def test_model_pick_default_and_unknown() -> None:
    assert pick_model(MODELS, None, "xl").id == "xl"
    assert pick_model(MODELS, "sd", "xl").id == "sd"
    with pytest.raises(CompatError) as err:
        pick_model(MODELS, "dall-e-3", "sd")
    assert err.value.status_code == 404 and err.value.code == "model_not_found" and "sd, xl" in err.value.message


def test_extensions_are_honoured_and_defaults_kept() -> None:
    req = ImagesRequest(
        prompt="p",
        n=3,
        size="64x64",
        negative_prompt="n",
        seed=9,
        steps=2,
        cfg_scale=3,
        sampler="DPM++ 2M Karras",
    )
    job = to_generate_request(req, MODELS[0])
    assert (job.width, job.height, job.batch_size, job.seed, job.steps, job.cfg_scale) == (
        64,
        64,
        3,
        9,
        2,
        3.0,
    )
    assert (job.negative_prompt, job.sampler, job.model) == ("n", "DPM++ 2M Karras", "sd")
    plain = to_generate_request(ImagesRequest(prompt="p"), MODELS[1])
    assert (plain.width, plain.steps, plain.cfg_scale, plain.sampler) == (1024, 20, 7.5, "euler_a")


@pytest.mark.parametrize(
    ("field", "value"),
    [("n", 5), ("n", 0), ("response_format", "jpeg"), ("steps", 0), ("bogus", 1), ("output_format", "webp")],
)
def test_bad_fields_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as err:
        ImagesRequest.model_validate({"prompt": "p", field: value})
    assert err.value.errors()[0]["loc"][0] == field


def test_openai_fields_without_meaning_here_are_accepted() -> None:
    ImagesRequest.model_validate({"prompt": "p", "quality": "hd", "style": "vivid", "user": "u", "background": "auto"})
