"""Adapters end to end over real HTTP: a real gateway process supervising a real CPU worker, a models dir with
tiny LoRAs, embeddings, a VAE and ControlNets of both families (the testing makers), and real clients — httpx
for /api/v1 and the CLI, the `webuiapi` package (what A1111 scripts use) for the A1111 API, including a
sd-webui-controlnet unit.
"""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import webuiapi
from gateway_procs import Gateway, make_gateway, wait_job
from PIL import Image, ImageDraw

pytestmark = pytest.mark.integration

_MAKE = """
import sys
from pathlib import Path
from ablerefusal.testing.controlnet import make_tiny_controlnet
from ablerefusal.testing.tiny import make_tiny
from ablerefusal.testing.tiny_adapters import make_tiny_embedding, make_tiny_lora, make_tiny_vae
dest = Path(sys.argv[1])
make_tiny(dest, "sd15", "diffusers")
make_tiny_lora(dest, "sd15", "kohya", name="ink")
make_tiny_lora(dest, "sd15", "peft", name="sky", seed=1)
make_tiny_lora(dest, "sdxl", "kohya", name="ink-xl")
make_tiny_embedding(dest, "sd15", name="tiny-emb")
make_tiny_embedding(dest, "sdxl", name="tiny-emb-xl")
make_tiny_vae(dest, name="tiny-vae")
make_tiny_vae(dest, name="tiny-vae-xl")
make_tiny_controlnet(dest, "sd15", "single-file", name="control_tiny_canny")
make_tiny_controlnet(dest, "sdxl", "diffusers", name="cn-xl")
"""
MODEL = "tiny-sd15"
SMALL: dict[str, Any] = {"model": MODEL, "width": 64, "height": 64, "steps": 2, "sampler": "euler"}


@pytest.fixture(scope="module")
def adapter_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("adapter-models")
    subprocess.run([sys.executable, "-c", _MAKE, str(models)], check=True, timeout=600)
    return models


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, adapter_models: Path) -> Iterator[Gateway]:
    gw = make_gateway(tmp_path_factory.mktemp("adapters-gw"), adapter_models, "--workers", "1", "--device", "cpu")
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=300) as client:
        yield client


def square_png() -> bytes:
    """A white square on black: the canny preprocessor finds its edges."""
    image = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(image).rectangle((16, 16, 47, 47), fill="white")
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def pixels(http: httpx.Client, job: dict[str, Any]) -> bytes:
    assert job["status"] == "completed", job
    png = http.get(job["results"][0]["image_url"]).content
    return Image.open(io.BytesIO(png)).convert("RGB").tobytes()


def run(http: httpx.Client, **body: Any) -> dict[str, Any]:
    resp = http.post("/api/v1/generate", json={**SMALL, "prompt": "a red cube", "seed": 7, **body})
    assert resp.status_code == 202, resp.text
    return wait_job(http, resp.json()["id"], timeout=300)


def job_count(http: httpx.Client) -> int:
    total: int = http.get("/api/v1/generate").json()["total"]
    return total


def test_models_are_listed_by_kind(http: httpx.Client) -> None:
    def listed(kind: str) -> dict[str, dict[str, Any]]:
        resp = http.get("/api/v1/models", params={"kind": kind})
        assert resp.status_code == 200, resp.text
        return {m["id"]: m for m in resp.json()["models"]}

    loras = listed("lora")
    assert {k: m["family"] for k, m in loras.items()} == {"ink": "sd15", "sky": "sd15", "ink-xl": "sdxl"}
    assert all(m["kind"] == "lora" and m["size_bytes"] > 0 for m in loras.values())
    assert {k: m["family"] for k, m in listed("embedding").items()} == {"tiny-emb": "sd15", "tiny-emb-xl": "sdxl"}
    assert {k: m["family"] for k, m in listed("vae").items()} == {"tiny-vae": "sd15", "tiny-vae-xl": "sdxl"}
    assert {k: m["family"] for k, m in listed("controlnet").items()} == {"control_tiny_canny": "sd15", "cn-xl": "sdxl"}
    # This models dir has no upscalers/ or models/ESRGAN/ files: an empty listing.
    assert listed("upscaler") == {}
    # The default kind is unchanged: checkpoints only.
    assert set(listed("checkpoint")) == {MODEL} == {m["id"] for m in http.get("/api/v1/models").json()["models"]}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"loras": [{"name": "nope"}]}, "loras.0.name", ["unknown LoRA 'nope'", "ink", "sky"]),
        ({"loras": [{"name": "ink"}, {"name": "ink-xl"}]}, "loras.1.name", ["sdxl", "sd15", MODEL]),
        ({"prompt": "a cat <lora:nope:0.5>"}, "prompt", ["<lora:nope:0.5>", "unknown LoRA"]),
        ({"prompt": "a cat <lora:ink-xl:1>"}, "prompt", ["sdxl", "sd15"]),
        # Two bad tags: one entry for the prompt, saying both.
        ({"prompt": "x <lora:nope:1> <lora:ink-xl:1>"}, "prompt", ["'nope'", "'ink-xl' is for sdxl"]),
        ({"vae": "nope"}, "vae", ["unknown VAE", "tiny-vae"]),
        ({"controlnets": [{"model": "cn-xl", "image": "IMAGE"}]}, "controlnets.0.model", ["sdxl", "sd15"]),
        ({"controlnets": [{"model": "nope", "image": "IMAGE"}]}, "controlnets.0.model", ["control_tiny_canny"]),
        (
            {"controlnets": [{"model": "control_tiny_canny", "image": "IMAGE", "preprocessor": "nope"}]},
            "controlnets.0.preprocessor",
            ["unknown preprocessor", "canny"],
        ),
    ],
)
def test_names_are_checked_against_the_workers(
    http: httpx.Client, gateway: Gateway, change: dict[str, Any], field: str, words: list[str]
) -> None:
    before = job_count(http)
    if "controlnets" in change:
        change = json.loads(json.dumps(change).replace('"IMAGE"', json.dumps(base64.b64encode(square_png()).decode())))
    resp = http.post("/api/v1/generate", json={**SMALL, "prompt": "a red cube", **change})
    assert resp.status_code == 400, resp.text
    (detail,) = resp.json()["error"]["details"]
    assert detail["field"] == field
    for word in words:
        assert word in detail["message"], detail
    assert job_count(http) == before
    assert not list((gateway.root / "inputs").rglob("*.png")), "a refused job stored its control image"


def test_lora_jobs_run_and_weights_matter(http: httpx.Client) -> None:
    plain = pixels(http, run(http))
    assert pixels(http, run(http, loras=[{"name": "ink", "weight": 0}])) == plain
    with_lora = run(http, prompt="a red cube <lora:ink:1>")
    assert pixels(http, with_lora) != plain
    assert with_lora["request"]["prompt"] == "a red cube <lora:ink:1>"
    # Both spellings of one LoRA set give one image.
    assert pixels(http, run(http, loras=[{"name": "ink", "weight": 1}])) == pixels(http, with_lora)
    assert pixels(http, run(http)) == plain


def test_controlnet_job_with_an_uploaded_image(http: httpx.Client) -> None:
    upload = http.post("/api/v1/uploads", files={"file": ("square.png", square_png(), "image/png")})
    assert upload.status_code in (200, 201), upload.text
    unit = {"model": "control_tiny_canny", "image": upload.json()["id"], "preprocessor": "canny", "weight": 0.8}
    job = run(http, controlnets=[unit], clip_skip=2, vae="tiny-vae")
    assert job["status"] == "completed", job
    assert job["request"]["controlnets"][0]["image"] == upload.json()["id"]


def test_a1111_adapter_listings_and_options(gateway: Gateway) -> None:
    api = webuiapi.WebUIApi(host="127.0.0.1", port=gateway.port)
    loras = {item["name"]: item for item in api.get_loras()}
    assert set(loras) == {"ink", "sky", "ink-xl"}
    assert loras["ink"]["alias"] == "ink" and loras["ink"]["metadata"]["family"] == "sd15"
    assert api.session.post(f"{api.baseurl}/refresh-loras").status_code == 200
    embeddings = api.get_embeddings()
    assert set(embeddings["loaded"]) == {"tiny-emb"} and set(embeddings["skipped"]) == {"tiny-emb-xl"}
    assert api.get_sd_vae() == [{"model_name": v, "filename": v} for v in ("tiny-vae", "tiny-vae-xl")]
    api.set_options({"sd_vae": "tiny-vae.safetensors", "CLIP_stop_at_last_layers": 2})
    try:
        options = api.get_options()
        assert (options["sd_vae"], options["CLIP_stop_at_last_layers"]) == ("tiny-vae", 2)
    finally:
        api.set_options({"sd_vae": "Automatic", "CLIP_stop_at_last_layers": 1})
    resp = api.session.post(f"{api.baseurl}/options", json={"sd_vae": "missing.pt"})
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "sd_vae"]


def test_webuiapi_txt2img_with_lora_tag_vae_clip_skip_and_controlnet_unit(gateway: Gateway, http: httpx.Client) -> None:
    api = webuiapi.WebUIApi(host="127.0.0.1", port=gateway.port, sampler="Euler", steps=2)
    title = next(t for t in http.get("/controlnet/model_list").json()["model_list"] if "control_tiny_canny" in t)
    unit = webuiapi.ControlNetUnit(
        image=Image.open(io.BytesIO(square_png())), module="canny", model=title, weight=0.9, guidance_end=0.8,
        control_mode=1, threshold_a=50, threshold_b=150,
    )  # fmt: skip
    result = api.txt2img(
        prompt="a red cube <lora:ink:0.8>",
        width=64,
        height=64,
        seed=11,
        controlnet_units=[unit],
        override_settings={"sd_model_checkpoint": MODEL, "sd_vae": "tiny-vae", "CLIP_stop_at_last_layers": 2},
    )
    assert len(result.images) == 1 and result.images[0].size == (64, 64)
    assert (result.info["sd_vae_name"], result.info["clip_skip"]) == ("tiny-vae", 2)
    # The image's parameters, as A1111's PNG Info reads them, name every adapter.
    parsed = api.png_info(result.image).info
    assert parsed == result.info["infotexts"][0]
    for part in ('Lora hashes: "ink: ', "Clip skip: 2", "VAE: tiny-vae", "VAE hash: "):
        assert part in parsed, (part, parsed)
    unit_line = re.search(r'ControlNet 0: "([^"]*)"', parsed)
    assert unit_line is not None, parsed
    assert "Module: canny" in unit_line[1] and "Weight: 0.9" in unit_line[1], unit_line[1]
    job = http.get("/api/v1/generate", params={"limit": 1}).json()["items"][0]
    request = job["request"]
    assert request["prompt"] == "a red cube <lora:ink:0.8>"
    assert (request["vae"], request["clip_skip"]) == ("tiny-vae", 2)
    (cn,) = request["controlnets"]
    assert (cn["model"], cn["preprocessor"], cn["weight"], cn["guidance_end"]) == (
        "control_tiny_canny",
        "canny",
        0.9,
        0.8,
    )
    assert (cn["control_mode"], cn["resize_mode"], cn["threshold_a"], cn["threshold_b"]) == ("prompt", "fill", 50, 150)
    assert len(cn["image"]) == 64  # stored as an upload at submit


def test_a1111_bad_unit_is_422_naming_it(gateway: Gateway, http: httpx.Client) -> None:
    before = job_count(http)
    body = {
        "prompt": "x", "width": 64, "height": 64, "steps": 2,
        "alwayson_scripts": {"ControlNet": {"args": [{"image": "", "model": "control_tiny_canny", "enabled": True}]}},
    }  # fmt: skip
    resp = http.post("/sdapi/v1/txt2img", json=body)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "alwayson_scripts", "ControlNet", "args", "0", "image"]
    resp = http.post("/sdapi/v1/txt2img", json={**body, "alwayson_scripts": {}, "prompt": "x <lora:nope:1>"})
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "prompt"]
    assert job_count(http) == before


def test_cli_generate_with_adapters(gateway: Gateway, tmp_path: Path) -> None:
    image = tmp_path / "square.png"
    image.write_bytes(square_png())
    out = tmp_path / "out"
    argv = [
        sys.executable, "-m", "ablerefusal", "generate", "a red cube <lora:sky:0.5>", "--url", gateway.url,
        "--model", MODEL, "--width", "64", "--height", "64", "--steps", "2", "--seed", "3", "--out", str(out),
        "--lora", "ink:0.8", "--controlnet", f"control_tiny_canny:{image}:canny:0.7", "--clip-skip", "2",
        "--vae", "tiny-vae",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(list(out.glob("*.png"))) == 1
    with httpx.Client(base_url=gateway.url) as client:
        request = client.get("/api/v1/generate", params={"limit": 1}).json()["items"][0]["request"]
    assert request["loras"] == [{"name": "ink", "weight": 0.8}]
    assert (request["clip_skip"], request["vae"]) == (2, "tiny-vae")
    (unit,) = request["controlnets"]
    assert (unit["model"], unit["preprocessor"], unit["weight"]) == ("control_tiny_canny", "canny", 0.7)
    bad = subprocess.run([*argv[:-8], "--lora", "nope"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "loras.0.name" in bad.stderr


def test_a1111_img2img_unit_without_image_uses_the_init_image(http: httpx.Client) -> None:
    square = base64.b64encode(square_png()).decode()
    unit = {"module": "none", "model": "control_tiny_canny", "weight": 0.5}
    body = {
        "prompt": "a red cube", "init_images": [square], "denoising_strength": 0.6, "width": 64, "height": 64,
        "steps": 2, "sampler_name": "Euler", "alwayson_scripts": {"controlnet": {"args": [unit]}},
    }  # fmt: skip
    resp = http.post("/sdapi/v1/img2img", json=body)
    assert resp.status_code == 200, resp.text
    request = http.get("/api/v1/generate", params={"limit": 1}).json()["items"][0]["request"]
    (cn,) = request["controlnets"]
    assert cn["image"] == request["init_image"] and (cn["preprocessor"], cn["weight"]) == ("none", 0.5)


def test_a_lora_copied_in_is_usable_at_once(http: httpx.Client, adapter_models: Path) -> None:
    # The gateway keeps listings for a few seconds; a name it does not know yet is looked up again.
    assert "ink" in {m["id"] for m in http.get("/api/v1/models", params={"kind": "lora"}).json()["models"]}
    copy = adapter_models / "loras" / "ink-copy.safetensors"
    copy.write_bytes((adapter_models / "loras" / "ink.safetensors").read_bytes())
    try:
        job = run(http, loras=[{"name": "ink-copy", "weight": 0.5}])
        assert job["status"] == "completed", job
    finally:
        copy.unlink()


def test_a_vae_is_not_refused_for_the_family_its_name_suggests(http: httpx.Client) -> None:
    # SD 1.5 and SDXL VAEs have the same tensors: the family listed for a VAE is a guess from its name ("xl"),
    # so a job is not refused for it (the worker does not refuse it either, nor does A1111).
    job = run(http, vae="tiny-vae-xl")
    assert job["status"] == "completed", job
    assert "VAE: tiny-vae-xl" in job["results"][0]["infotext"]
