"""ControlNet on the worker, through its HTTP API with the tiny models and tiny random-weight ControlNets.

The tiny ControlNets' output convolutions are random rather than zero (testing/controlnet.py), so a unit at
weight 1 really changes the image; at weight 0 diffusers adds exact zeros to the UNet's residuals, so the image
must be the one without ControlNet, pixel for pixel.
"""

from __future__ import annotations

import base64
import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from worker_helpers import call_body, images, pixels, run_call, wait_ready

from ablerefusal.protocol import ModelFamily, ModelList
from ablerefusal.testing.controlnet import make_tiny_controlnet
from ablerefusal.worker.app import create_app
from ablerefusal.worker.engine.controlnet.pipeline import soft_scales
from ablerefusal.worker.service import WorkerService
from ablerefusal.worker.settings import WorkerSettings

CN = {"sd15": "tiny-controlnet-sd15", "sdxl": "tiny-controlnet-sdxl"}
MODEL = {"sd15": "tiny-sd15", "sdxl": "tiny-sdxl"}


def square_png(size: int = 64, box: tuple[int, int, int, int] = (16, 16, 47, 47)) -> str:
    image = Image.new("RGB", (size, size), "black")
    ImageDraw.Draw(image).rectangle(box, fill="white")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def circle_png(size: int = 64) -> str:
    image = Image.new("RGB", (size, size), "black")
    ImageDraw.Draw(image).ellipse((8, 20, 56, 44), fill="white")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


@pytest.fixture(scope="module")
def cn_models_dir(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SD 1.5 / SDXL models with a tiny ControlNet of each family, in both formats."""
    models = tmp_path_factory.mktemp("cn-models")
    for name in MODEL.values():
        shutil.copytree(tiny_models_dir / name, models / name)
    for family in ("sd15", "sdxl"):
        make_tiny_controlnet(models, family, "diffusers")
        make_tiny_controlnet(models, family, "single-file")
    (models / "controlnet" / "not-a-controlnet.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return models


@pytest.fixture(scope="module")
def cn_client(cn_models_dir: Path) -> Iterator[TestClient]:
    settings = WorkerSettings(models_dir=cn_models_dir, device="cpu", cache_size=2, worker_id="cn-worker")
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client


def unit(model: str, **over: Any) -> dict[str, Any]:
    return {"model": model, "preprocessor": "none", **over}


def one_image(
    client: TestClient,
    family: str = "sd15",
    units: list[dict[str, Any]] | None = None,
    control: list[str] | None = None,
    **over: Any,
) -> np.ndarray:
    item: dict[str, Any] = {"job_id": "job-1", "prompt": "a red cat", "seeds": [42]}
    if units:
        item["control_images"] = control if control is not None else [square_png() for _ in units]
    body = call_body(MODEL[family], items=[item], controlnets=units or [], **over)
    events = run_call(client, body)
    found = images(events)
    assert set(found) == {("job-1", 0)}, events
    return pixels(found[("job-1", 0)])


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_weight_zero_equals_no_controlnet_and_weight_one_differs(cn_client: TestClient, family: str) -> None:
    plain = one_image(cn_client, family)
    zero = one_image(cn_client, family, [unit(CN[family], weight=0.0)])
    one = one_image(cn_client, family, [unit(CN[family], weight=1.0)])
    assert np.array_equal(zero, plain)
    assert np.abs(one.astype(int) - plain.astype(int)).mean() > 1.0


def test_two_units_apply_both(cn_client: TestClient) -> None:
    a = unit(CN["sd15"], weight=1.0)
    b = unit("tiny-controlnet-sd15-single", weight=0.7, preprocessor="canny")
    only_a = one_image(cn_client, "sd15", [a])
    only_b = one_image(cn_client, "sd15", [b], control=[circle_png()])
    both = one_image(cn_client, "sd15", [a, b], control=[square_png(), circle_png()])
    assert not np.array_equal(both, only_a)
    assert not np.array_equal(both, only_b)
    # A second unit at weight 0 adds exact zeros: the first unit's image, pixel for pixel.
    a_and_silent_b = one_image(cn_client, "sd15", [a, {**b, "weight": 0.0}], control=[square_png(), circle_png()])
    assert np.array_equal(a_and_silent_b, only_a)


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_single_file_controlnet_equals_its_diffusers_folder(cn_client: TestClient, family: str) -> None:
    # make_tiny_controlnet writes the same random weights in both formats (the SD 1.5 file in A1111's layout).
    folder = one_image(cn_client, family, [unit(CN[family])])
    single = one_image(cn_client, family, [unit(f"{CN[family]}-single")])
    assert np.array_equal(folder, single)


def test_control_modes_differ_and_follow_soft_weights(cn_client: TestClient) -> None:
    balanced = one_image(cn_client, "sd15", [unit(CN["sd15"], control_mode="balanced")])
    prompt = one_image(cn_client, "sd15", [unit(CN["sd15"], control_mode="prompt")])
    control = one_image(cn_client, "sd15", [unit(CN["sd15"], control_mode="controlnet")])
    assert not np.array_equal(balanced, prompt)
    assert not np.array_equal(prompt, control)
    # sd-webui-controlnet's soft weights for SD 1.5's 13 residuals: 0.825**(12-i), within 0.6% of diffusers'
    # guess-mode logspace(-1, 0, 13).
    assert soft_scales(13, ModelFamily.sd15) == pytest.approx([0.825 ** (12 - i) for i in range(13)])
    assert np.allclose(soft_scales(13, ModelFamily.sd15), np.logspace(-1, 0, 13), rtol=6e-3)
    assert soft_scales(10, ModelFamily.sdxl) == pytest.approx([0.825 ** (12 - i) for i in range(10)])


def test_guidance_window_matters(cn_client: TestClient) -> None:
    full = one_image(cn_client, "sd15", [unit(CN["sd15"])], steps=4)
    late = one_image(cn_client, "sd15", [unit(CN["sd15"], guidance_start=0.5)], steps=4)
    plain = one_image(cn_client, "sd15", steps=4)
    assert not np.array_equal(full, late)
    assert not np.array_equal(late, plain)
    # An empty window (start == end, which A1111 allows) never applies the unit.
    assert np.array_equal(
        one_image(cn_client, "sd15", [unit(CN["sd15"], guidance_start=0.5, guidance_end=0.5)], steps=4), plain
    )


def test_coalesced_items_keep_their_own_control_images(cn_client: TestClient) -> None:
    units = [unit(CN["sd15"])]
    alone_square = one_image(cn_client, "sd15", units, control=[square_png()])
    alone_circle = one_image(cn_client, "sd15", units, control=[circle_png()])
    items = [
        {"job_id": "job-1", "prompt": "a red cat", "seeds": [42], "control_images": [square_png()]},
        {"job_id": "job-2", "prompt": "a red cat", "seeds": [42], "control_images": [circle_png()]},
    ]
    found = images(run_call(cn_client, call_body(items=items, controlnets=units)))
    assert np.array_equal(pixels(found[("job-1", 0)]), alone_square)
    assert np.array_equal(pixels(found[("job-2", 0)]), alone_circle)
    assert not np.array_equal(alone_square, alone_circle)


def test_infotext_has_the_unit_line(cn_client: TestClient, cn_models_dir: Path) -> None:
    body = call_body(
        items=[{"job_id": "job-1", "prompt": "a red cat", "seeds": [42], "control_images": [square_png()]}],
        controlnets=[unit("tiny-controlnet-sd15-single", preprocessor="canny", weight=0.5)],
    )
    event = images(run_call(cn_client, body))[("job-1", 0)]
    from ablerefusal.worker.engine.controlnet.models import legacy_hash

    short = legacy_hash(cn_models_dir / "controlnet" / "tiny-controlnet-sd15-single.safetensors")
    assert (
        f'ControlNet 0: "Module: canny, Model: tiny-controlnet-sd15-single [{short}], Weight: 0.5, '
        "Resize Mode: Just Resize, Processor Res: 512, Threshold A: 100.0, Threshold B: 200.0, "
        'Guidance Start: 0.0, Guidance End: 1.0, Pixel Perfect: False, Control Mode: Balanced"'
    ) in event.infotext
    assert event.metadata["controlnets"][0]["model"] == "tiny-controlnet-sd15-single"


INPAINT_CASES = {
    "inpaint": {"mode": "inpaint", "denoising_strength": 0.8},
    "only-masked": {"mode": "inpaint", "denoising_strength": 0.8, "inpaint_only_masked": True, "inpaint_padding": 8},
    "outpaint": {
        "mode": "outpaint",
        "denoising_strength": 0.8,
        "outpaint": {"left": 16, "right": 0, "top": 0, "bottom": 16},
    },
}


def _refusal(client: TestClient, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    resp = client.post("/v1/generate", json=body)
    return resp.status_code, resp.json()["error"]


def _item(**over: Any) -> dict[str, Any]:
    return {"job_id": "job-1", "prompt": "a red cat", "seeds": [42], "control_images": [square_png()], **over}


@pytest.mark.parametrize(
    ("over", "status", "field", "words"),
    [
        ({"controlnets": [unit(CN["sdxl"])]}, 400, "controlnets.0.model", "is for sdxl"),
        ({"controlnets": [unit("no-such-controlnet")]}, 404, "controlnets.0.model", "unknown ControlNet"),
        ({"controlnets": [unit("not-a-controlnet")]}, 404, "controlnets.0.model", "was refused: not a ControlNet"),
        ({"controlnets": [unit("../etc")]}, 400, "controlnets.0.model", "ControlNet id"),
        ({"controlnets": [unit(CN["sd15"], preprocessor="sobel")]}, 400, "controlnets.0.preprocessor", "unknown"),
        (
            {"controlnets": [unit(CN["sd15"], preprocessor="softedge_hed")]},
            400,
            "controlnets.0.preprocessor",
            "weights not on disk",
        ),
        (
            {"controlnets": [unit(CN["sd15"], guidance_start=0.6, guidance_end=0.4)]},
            400,
            "controlnets.0.guidance_end",
            "not be below guidance_start",
        ),
        (
            {"controlnets": [unit(CN["sd15"])], "items": [_item(control_images=[])]},
            400,
            "items.0.control_images",
            "one image per ControlNet unit",
        ),
        (
            {"controlnets": [unit(CN["sd15"])], "items": [_item(control_images=["bm90IGFuIGltYWdl"])]},
            400,
            "items.0.control_images.0",
            "",
        ),
        ({"items": [_item()]}, 400, "items.0.control_images", "no controlnets"),
        (
            {
                "controlnets": [unit(CN["sd15"])],
                "mode": "inpaint",
                "inpainting_fill": "latent_noise",
                "items": [_item(init_image=square_png(), mask=square_png())],
            },
            400,
            "inpainting_fill",
            "does not run with controlnets",
        ),
        ({"controlnets": [unit(CN["sd15"])], "hires": {"scale": 1.5}}, 400, "hires", "does not run with controlnets"),
        (
            {
                "controlnets": [unit(CN["sd15"])],
                **INPAINT_CASES["only-masked"],
                "items": [_item(init_image=square_png(), mask=square_png())],
            },
            400,
            "inpaint_only_masked",
            "does not run with controlnets",
        ),
    ],
)
def test_bad_units_are_refused_naming_the_field(
    cn_client: TestClient, over: dict[str, Any], status: int, field: str, words: str
) -> None:
    body = call_body(**{"items": [_item()], **over})
    code, error = _refusal(cn_client, body)
    assert code == status, error
    assert error["details"][0]["field"] == field
    assert words in error["message"]


def test_preprocessor_listing(cn_client: TestClient) -> None:
    listed = {p["id"]: p for p in cn_client.get("/v1/controlnet/preprocessors").json()["preprocessors"]}
    assert listed["none"]["available"] and listed["canny"]["available"]
    assert listed["canny"]["threshold_a"]["value"] == 100 and listed["canny"]["threshold_b"]["value"] == 200
    hed = listed["softedge_hed"]
    assert hed["available"] is False
    assert "controlnet/annotators/ControlNetHED.pth" in hed["reason"]


def _edges(client: TestClient, image: str, **over: Any) -> np.ndarray:
    resp = client.post("/v1/controlnet/detect", json={"preprocessor": "canny", "image": image, **over})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    out = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["image"]))).convert("L"))
    assert out.shape == (body["height"], body["width"])
    return out


def test_canny_finds_the_edges_of_a_drawn_square(cn_client: TestClient) -> None:
    # At processor_res 64 the 64x64 image is not rescaled: edges must sit on the square's outline.
    edges = _edges(cn_client, square_png(), processor_res=64) > 0
    outline = np.zeros_like(edges)
    outline[15:49, 15:49] = True
    outline[18:46, 18:46] = False  # a band of +-2 pixels around the square's border (16..47)
    assert edges[outline].sum() >= 4 * 28  # every side found along (nearly) its length
    assert not edges[~outline].any()  # nothing in the flat areas, inside or out
    for side in (edges[15:49, 15:18], edges[15:49, 46:49], edges[15:18, 15:49], edges[46:49, 15:49]):
        assert side.any(axis=1 if side.shape[1] == 3 else 0).sum() >= 28
    # Thresholds above the square's contrast find nothing.
    flat = _edges(cn_client, square_png(), processor_res=64, threshold_a=2000, threshold_b=3000)
    assert not flat.any()


def test_detect_scales_to_processor_res_and_refuses_bad_input(cn_client: TestClient) -> None:
    assert _edges(cn_client, square_png(), processor_res=128).shape == (128, 128)
    bad = cn_client.post("/v1/controlnet/detect", json={"preprocessor": "sobel", "image": square_png()})
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["field"] == "preprocessor"
    bad = cn_client.post("/v1/controlnet/detect", json={"preprocessor": "canny", "image": "bm90IGFuIGltYWdl"})
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["field"] == "image"
    bad = cn_client.post("/v1/controlnet/detect", json={"preprocessor": "canny"})
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["field"] == "image"


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_img2img_with_controlnet(cn_client: TestClient, family: str) -> None:
    img2img: dict[str, Any] = {"mode": "img2img", "denoising_strength": 0.6, "steps": 4}
    item = {"job_id": "job-1", "prompt": "a red cat", "seeds": [42], "init_image": circle_png()}

    def run(units: list[dict[str, Any]]) -> np.ndarray:
        control = {"control_images": [square_png()]} if units else {}
        body = call_body(MODEL[family], items=[{**item, **control}], controlnets=units, **img2img)
        return pixels(images(run_call(cn_client, body))[("job-1", 0)])

    plain = run([])
    assert np.array_equal(run([unit(CN[family], weight=0.0)]), plain)
    assert np.abs(run([unit(CN[family], weight=1.0)]).astype(int) - plain.astype(int)).mean() > 1.0


@pytest.mark.parametrize(("family", "case"), [("sd15", "inpaint"), ("sd15", "outpaint"), ("sdxl", "inpaint")])
def test_inpaint_and_outpaint_with_controlnet(cn_client: TestClient, family: str, case: str) -> None:
    mask = square_png(box=(8, 8, 40, 40))
    item: dict[str, Any] = {"job_id": "job-1", "prompt": "a red cat", "seeds": [42], "init_image": circle_png()}
    if case != "outpaint":
        item["mask"] = mask

    def run(units: list[dict[str, Any]]) -> np.ndarray:
        control = {"control_images": [square_png()]} if units else {}
        body = call_body(MODEL[family], items=[{**item, **control}], controlnets=units, steps=4, **INPAINT_CASES[case])
        return pixels(images(run_call(cn_client, body))[("job-1", 0)])

    plain = run([])
    assert np.array_equal(run([unit(CN[family], weight=0.0)]), plain)
    assert np.abs(run([unit(CN[family], weight=1.0)]).astype(int) - plain.astype(int)).mean() > 0.5


def test_controlnet_listing(cn_client: TestClient) -> None:
    service: WorkerService = cn_client.app.state.service  # type: ignore[attr-defined]
    resp = cn_client.get("/v1/models", params={"kind": "controlnet"})
    assert resp.status_code == 200, resp.text
    listed = {m.id: m for m in ModelList.model_validate(resp.json()).models}
    assert {k: (m.family.value, m.format.value) for k, m in listed.items()} == {
        "tiny-controlnet-sd15": ("sd15", "diffusers"),
        "tiny-controlnet-sd15-single": ("sd15", "single-file"),
        "tiny-controlnet-sdxl": ("sdxl", "diffusers"),
        "tiny-controlnet-sdxl-single": ("sdxl", "single-file"),
    }
    assert all(m.kind == "controlnet" for m in listed.values())
    assert listed["tiny-controlnet-sd15-single"].legacy_hash is not None
    assert "not-a-controlnet" in service.controlnets.refused()
