"""A1111 adapter translation without a worker: sd-webui-controlnet units (every spelling the extension's API
accepts, field by field against ``internal_controlnet/args.py`` and ``external_code.py``), the sd_vae and
CLIP_stop_at_last_layers options, and the adapter routes' shapes and errors in process.

The same flows over real HTTP with a worker and tiny adapters: tests/integration/test_adapters_live.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from ablerefusal.gateway.compat.a1111_adapters import clip_skip_of, find_vae
from ablerefusal.gateway.compat.a1111_controlnet_units import controlnet_units
from ablerefusal.gateway.compat.errors import CompatFieldError
from ablerefusal.protocol import ControlMode, ModelFamily, ModelFormat, ModelInfo, ResizeMode

SHA = "d14c016b" + "0" * 56
MODELS = [
    ModelInfo(id="control_v11p_sd15_canny", kind="controlnet", name="control_v11p_sd15_canny",
              family=ModelFamily.sd15, format=ModelFormat.single_file, sha256=SHA),
    ModelInfo(id="cn-depth", kind="controlnet", name="cn-depth", family=ModelFamily.sd15,
              format=ModelFormat.diffusers),
]  # fmt: skip
VAES = [
    ModelInfo(id="vae-ft-mse", kind="vae", name="vae-ft-mse", family=ModelFamily.sd15, format=ModelFormat.single_file)
]
IMG = "iVBORw0KGgo="  # the text is passed on as is; the gateway decodes it at submit

# What webuiapi 0.9.17's ControlNetUnit(...).to_dict() sends with its defaults and an image.
WEBUIAPI_UNIT: dict[str, Any] = {
    "image": IMG, "mask": None, "module": "canny", "model": "control_v11p_sd15_canny [d14c016b]", "weight": 1.0,
    "resize_mode": "Resize and Fill", "low_vram": False, "processor_res": 512, "threshold_a": 64,
    "threshold_b": 64, "guidance_start": 0.0, "guidance_end": 1.0, "control_mode": "Balanced",
    "pixel_perfect": False, "hr_option": "Both", "enabled": True,
}  # fmt: skip


def units(*args: Any, key: str = "controlnet", fallback: str | None = None) -> list[dict[str, Any]]:
    specs = controlnet_units({key: {"args": list(args)}}, MODELS, fallback_image=fallback)
    return [s.model_dump(mode="json") for s in specs]


def error_field(*args: Any, fallback: str | None = None) -> str:
    with pytest.raises(CompatFieldError) as info:
        controlnet_units({"controlnet": {"args": list(args)}}, MODELS, fallback_image=fallback)
    return info.value.field


def test_webuiapi_unit_translates_field_by_field() -> None:
    # webuiapi names the script "ControlNet"; A1111 matches script names case-insensitively.
    (unit,) = units(WEBUIAPI_UNIT, key="ControlNet")
    assert unit == {
        "model": "control_v11p_sd15_canny", "image": IMG, "preprocessor": "canny", "weight": 1.0,
        "guidance_start": 0.0, "guidance_end": 1.0, "control_mode": "balanced", "resize_mode": "fill",
        "processor_res": 512, "threshold_a": 64.0, "threshold_b": 64.0, "pixel_perfect": False,
    }  # fmt: skip


def test_minimal_unit_takes_the_extensions_defaults() -> None:
    (unit,) = units({"input_image": IMG, "model": "cn-depth"})
    assert unit["preprocessor"] == "none" and unit["weight"] == 1.0
    # The extension's default resize mode is "Crop and Resize"; -1 sentinels mean the preprocessor's defaults.
    assert unit["resize_mode"] == ResizeMode.crop.value
    assert (unit["processor_res"], unit["threshold_a"], unit["threshold_b"]) == (512, None, None)
    (unit,) = units({"image": IMG, "model": "cn-depth", "processor_res": -1, "threshold_a": -1, "threshold_b": -1})
    assert (unit["processor_res"], unit["threshold_a"], unit["threshold_b"]) == (512, None, None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, ControlMode.balanced), (1, ControlMode.prompt), (2, ControlMode.controlnet),
     ("Balanced", ControlMode.balanced), ("My prompt is more important", ControlMode.prompt),
     ("ControlNet is more important", ControlMode.controlnet), ("prompt", ControlMode.prompt)],
)  # fmt: skip
def test_control_mode_as_index_or_name(value: Any, expected: ControlMode) -> None:
    assert units({**WEBUIAPI_UNIT, "control_mode": value})[0]["control_mode"] == expected.value


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, ResizeMode.resize), (1, ResizeMode.crop), (2, ResizeMode.fill), (3, ResizeMode.resize),
     ("Just Resize", ResizeMode.resize), ("Crop and Resize", ResizeMode.crop), ("Resize and Fill", ResizeMode.fill),
     ("Inner Fit (Scale to Fit)", ResizeMode.crop), ("Outer Fit (Shrink to Fit)", ResizeMode.fill),
     ("Scale to Fit (Inner Fit)", ResizeMode.crop), ("Envelope (Outer Fit)", ResizeMode.fill)],
)  # fmt: skip
def test_resize_mode_as_index_name_or_alias(value: Any, expected: ResizeMode) -> None:
    assert units({**WEBUIAPI_UNIT, "resize_mode": value})[0]["resize_mode"] == expected.value


@pytest.mark.parametrize(
    "model", ["control_v11p_sd15_canny", "control_v11p_sd15_canny [d14c016b]", "control_v11p_sd15_canny [D14C016B]"]
)
def test_model_with_or_without_its_hash(model: str) -> None:
    assert units({**WEBUIAPI_UNIT, "model": model})[0]["model"] == "control_v11p_sd15_canny"


def test_disabled_and_null_units_are_skipped_and_legacy_keys_read() -> None:
    got = units(
        {**WEBUIAPI_UNIT, "enabled": False},
        None,
        {"input_image": IMG, "model": "cn-depth", "guidance": 0.4, "lowvram": True},
    )
    assert [(u["model"], u["guidance_end"]) for u in got] == [("cn-depth", 0.4)]
    assert units() == [] and controlnet_units(None, MODELS) == [] and controlnet_units({"other": {}}, MODELS) == []


def test_image_forms() -> None:
    assert units({**WEBUIAPI_UNIT, "image": {"image": IMG, "mask": None}})[0]["image"] == IMG
    assert units({**WEBUIAPI_UNIT, "image": [IMG, None]})[0]["image"] == IMG
    # img2img: a unit without an image is controlled by the init image, as in the extension.
    assert units({**WEBUIAPI_UNIT, "image": ""}, fallback="init-upload")[0]["image"] == "init-upload"


@pytest.mark.parametrize(
    ("unit", "field"),
    [
        ({**WEBUIAPI_UNIT, "model": "None"}, "model"),
        ({**WEBUIAPI_UNIT, "model": "nope [d14c016b]"}, "model"),
        ({**WEBUIAPI_UNIT, "model": "control_v11p_sd15_canny [00000000]"}, "model"),
        ({**WEBUIAPI_UNIT, "image": ""}, "image"),
        ({**WEBUIAPI_UNIT, "image": 5}, "image"),
        ({**WEBUIAPI_UNIT, "mask": IMG}, "mask"),
        ({**WEBUIAPI_UNIT, "input_image": IMG}, "input_image"),
        ({**WEBUIAPI_UNIT, "control_mode": 3}, "control_mode"),
        ({**WEBUIAPI_UNIT, "control_mode": "Loud"}, "control_mode"),
        ({**WEBUIAPI_UNIT, "resize_mode": "Squash"}, "resize_mode"),
        ({**WEBUIAPI_UNIT, "weight": 3}, "weight"),
        ({**WEBUIAPI_UNIT, "weight": "heavy"}, "weight"),
        ({**WEBUIAPI_UNIT, "guidance_start": 0.8, "guidance_end": 0.2}, "guidance_start"),
        ({**WEBUIAPI_UNIT, "processor_res": 10}, "processor_res"),
        ({**WEBUIAPI_UNIT, "module": ""}, "module"),
    ],
)
def test_bad_unit_field_is_named(unit: dict[str, Any], field: str) -> None:
    assert error_field(unit) == f"alwayson_scripts.controlnet.args.0.{field}"


def test_bad_script_shapes_are_named() -> None:
    with pytest.raises(CompatFieldError) as info:
        controlnet_units({"controlnet": {"args": "x"}}, MODELS)
    assert info.value.field == "alwayson_scripts.controlnet.args"
    assert error_field("not a unit") == "alwayson_scripts.controlnet.args.0"
    assert error_field(*[WEBUIAPI_UNIT] * 5) == "alwayson_scripts.controlnet.args"


def test_vae_and_clip_skip_options() -> None:
    for none in ("Automatic", "None"):
        assert find_vae(none, VAES, "sd_vae") is None
    # A1111 names VAEs by file name, extension included.
    assert find_vae("vae-ft-mse.safetensors", VAES, "sd_vae") == "vae-ft-mse"
    assert find_vae("vae-ft-mse", VAES, "sd_vae") == "vae-ft-mse"
    with pytest.raises(CompatFieldError, match="available: Automatic, None, vae-ft-mse"):
        find_vae("other.pt", VAES, "sd_vae")
    assert clip_skip_of(2, "x") == 2 and clip_skip_of(2.0, "x") == 2
    for bad in (0, 13, 1.5, "2", True):
        with pytest.raises(CompatFieldError):
            clip_skip_of(bad, "x")


def test_routes_without_workers(open_client: TestClient) -> None:
    assert open_client.get("/sdapi/v1/loras").json() == []
    assert open_client.post("/sdapi/v1/refresh-loras").status_code == 200
    assert open_client.get("/sdapi/v1/embeddings").json() == {"loaded": {}, "skipped": {}}
    assert open_client.get("/sdapi/v1/sd-vae").json() == []
    resp = open_client.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 14})
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "CLIP_stop_at_last_layers"]
    resp = open_client.post("/sdapi/v1/options", json={"sd_vae": "missing.safetensors"})
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "sd_vae"]
