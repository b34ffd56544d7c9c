"""The coalescing shape of adapter jobs (issue 12): only jobs with the same LoRA set and weights (field and
prompt tags merged as the worker merges them), clip skip, VAE and ControlNet unit parameters share a call;
control images are per item and never split a shape."""

from __future__ import annotations

from typing import Any

import pytest
from store_helpers import req

from ablerefusal.gateway.jobs import JobStore
from ablerefusal.gateway.jobs.shape import coalesce_shape, effective_loras
from ablerefusal.gateway.schemas import GenerateRequest

UNIT: dict[str, Any] = {"model": "cn-canny", "image": "a" * 64, "preprocessor": "canny"}


def shape(**over: Any) -> str:
    return coalesce_shape(req(**over), {})


def test_no_adapters_is_the_plain_shape() -> None:
    assert shape(loras=[], clip_skip=None, vae=None, controlnets=[]) == ""
    # clip skip 1 is the last layer, as none is.
    assert shape(clip_skip=1) == ""


def test_field_and_prompt_tags_merge_as_on_the_worker() -> None:
    by_field = shape(loras=[{"name": "ink", "weight": 0.8}, {"name": "sky", "weight": 1}])
    assert by_field != ""
    # The same set written as tags, in another order, or half and half: one shape.
    assert shape(prompt="a cat <lora:sky:1> <lora:ink:0.8>") == by_field
    assert shape(prompt="a cat <lora:ink:0.8>", loras=[{"name": "sky"}]) == by_field
    # The field's weight wins over a tag of the same name.
    assert shape(prompt="a cat <lora:ink:0.2> <lora:sky>", loras=[{"name": "ink", "weight": 0.8}]) == by_field
    merged = effective_loras(req(prompt="<lora:sky:0.5> x", loras=[{"name": "ink", "weight": 0.8}]))
    assert [(r.name, r.weight) for r in merged] == [("ink", 0.8), ("sky", 0.5)]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"loras": [{"name": "ink"}]}, {}),
        ({"loras": [{"name": "ink"}]}, {"loras": [{"name": "sky"}]}),
        ({"loras": [{"name": "ink", "weight": 1}]}, {"loras": [{"name": "ink", "weight": 0.5}]}),
        ({"loras": [{"name": "ink"}]}, {"loras": [{"name": "ink"}, {"name": "sky"}]}),
        ({"prompt": "x <lora:ink:1>"}, {"prompt": "x <lora:ink:0.9>"}),
        ({"clip_skip": 2}, {}),
        ({"clip_skip": 2}, {"clip_skip": 3}),
        ({"vae": "vae-a"}, {}),
        ({"vae": "vae-a"}, {"vae": "vae-b"}),
        ({"controlnets": [UNIT]}, {}),
        ({"controlnets": [UNIT]}, {"controlnets": [{**UNIT, "model": "cn-depth"}]}),
        ({"controlnets": [UNIT]}, {"controlnets": [{**UNIT, "weight": 0.5}]}),
        ({"controlnets": [UNIT]}, {"controlnets": [{**UNIT, "guidance_end": 0.5}]}),
        ({"controlnets": [UNIT]}, {"controlnets": [{**UNIT, "preprocessor": "none"}]}),
        ({"controlnets": [UNIT]}, {"controlnets": [{**UNIT, "control_mode": "prompt"}]}),
        ({"controlnets": [UNIT]}, {"controlnets": [UNIT, UNIT]}),
    ],
)
def test_every_adapter_parameter_splits_the_shape(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert shape(**a) != shape(**b)


def test_control_images_and_prompts_are_per_item() -> None:
    base = shape(controlnets=[UNIT])
    assert shape(controlnets=[{**UNIT, "image": "b" * 64}], prompt="another", seed=4) == base


def test_claims_keep_lora_sets_apart(store: JobStore) -> None:
    def submit(request: GenerateRequest) -> str:
        return store.submit(request, shape=coalesce_shape(request, {})).job.id

    ink = submit(req(loras=[{"name": "ink", "weight": 0.8}]))
    plain = submit(req())
    sky = submit(req(prompt="x <lora:sky:1>"))
    ink_too = submit(req(prompt="another <lora:ink:0.8>", seed=5))
    ink_weaker = submit(req(loras=[{"name": "ink", "weight": 0.4}]))
    plain_too = submit(req(prompt="b"))
    claims = [[c.id for c in store.claim("w", max_images=8, coalesce=True)] for _ in range(4)]
    assert claims == [[ink, ink_too], [plain, plain_too], [sky], [ink_weaker]]
