"""The gateway's ControlNet endpoints over real HTTP: /api/v1/controlnet/* and sd-webui-controlnet's
/controlnet/* on a real gateway process driving a real CPU worker process, with tiny ControlNets on disk.
(The models are made in a child process: this test process stays free of torch, as the gateway is.)"""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from procs import Proc, free_port, worker_proc

WAIT_S = 180.0
_MAKE = """
import sys
from pathlib import Path
from ablerefusal.testing.controlnet import make_tiny_controlnet
dest = Path(sys.argv[1])
make_tiny_controlnet(dest, "sd15", "single-file", name="control_tiny_canny")
make_tiny_controlnet(dest, "sdxl", "diffusers", name="cn-xl")
"""


def square_png() -> bytes:
    image = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(image).rectangle((16, 16, 47, 47), fill="white")
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decoded(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))).convert("L"))


def legacy_hash(path: Path) -> str:
    """A1111's old model hash, computed here independently of the worker's code."""
    with path.open("rb") as fh:
        fh.seek(0x100000)
        return hashlib.sha256(fh.read(0x10000)).hexdigest()[:8]


@pytest.fixture(scope="module")
def cn_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("cn-api-models")
    subprocess.run([sys.executable, "-c", _MAKE, str(models)], check=True, timeout=600)
    return models


@pytest.fixture(scope="module")
def gateway_url(cn_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("cn-api")
    worker = worker_proc(cn_models, tmp / "worker.log")
    port = free_port()
    gateway = Proc(
        [
            sys.executable, "-m", "ablerefusal", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--no-local-worker", "--worker-url", worker.url,
            "--database-url", f"sqlite:///{tmp / 'jobs.db'}", "--output-dir", str(tmp / "outputs"),
            "--input-dir", str(tmp / "inputs"), "--models-dir", str(tmp / "models"),
        ],
        port=port,
        log_path=tmp / "gateway.log",
        ready_path="/api/v1/ready",
    )  # fmt: skip
    with worker, gateway:
        worker.start(timeout=WAIT_S)
        gateway.start(timeout=WAIT_S)
        yield gateway.url


@pytest.fixture
def http(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=120) as client:
        yield client


def test_preprocessors_are_listed_with_availability(http: httpx.Client) -> None:
    resp = http.get("/api/v1/controlnet/preprocessors")
    assert resp.status_code == 200, resp.text
    listed = {p["id"]: p for p in resp.json()["preprocessors"]}
    assert listed["none"]["available"] and listed["canny"]["available"]
    assert listed["canny"]["threshold_a"]["name"] == "Canny Low Threshold"
    assert listed["softedge_hed"]["available"] is False and "ControlNetHED.pth" in listed["softedge_hed"]["reason"]


def _edges_at_square(edges: np.ndarray) -> None:
    hits = edges > 0
    outline = np.zeros_like(hits)
    outline[15:49, 15:49] = True
    outline[18:46, 18:46] = False
    assert hits[outline].sum() >= 4 * 28
    assert not hits[~outline].any()


def test_detect_inline_returns_the_control_map_and_can_store_it(http: httpx.Client) -> None:
    body = {"image": b64(square_png()), "preprocessor": "canny", "processor_res": 64}
    resp = http.post("/api/v1/controlnet/detect", json=body)
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert (result["width"], result["height"]) == (64, 64) and result["upload"] is None
    _edges_at_square(decoded(result["image"]))

    stored = http.post("/api/v1/controlnet/detect", json={**body, "store": True}).json()
    upload = stored["upload"]
    assert upload["id"] == hashlib.sha256(base64.b64decode(stored["image"])).hexdigest()
    served = http.get(upload["url"])
    assert served.status_code == 200 and served.content == base64.b64decode(stored["image"])


def test_detect_reads_an_upload_id(http: httpx.Client) -> None:
    upload = http.post("/api/v1/uploads", files={"file": ("sq.png", square_png(), "image/png")}).json()
    resp = http.post("/api/v1/controlnet/detect", json={"image": upload["id"], "processor_res": 64})
    assert resp.status_code == 200, resp.text
    _edges_at_square(decoded(resp.json()["image"]))  # canny is the default preprocessor


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"image": "0" * 64}, "image"),  # an upload id nobody stored
        ({"image": "bm90IGFuIGltYWdl"}, "image"),  # base64 of text
        ({"image": b64(square_png()), "preprocessor": "sobel"}, "preprocessor"),
        ({"image": b64(square_png()), "preprocessor": "softedge_hed"}, "preprocessor"),
        ({"image": b64(square_png()), "processor_res": 32}, "processor_res"),
        ({}, "image"),
    ],
)
def test_detect_refuses_bad_input_naming_the_field(http: httpx.Client, body: dict[str, Any], field: str) -> None:
    resp = http.post("/api/v1/controlnet/detect", json=body)
    assert resp.status_code == 400, resp.text
    assert field in [d["field"] for d in resp.json()["error"]["details"]]


def test_controlnet_models_are_listed_by_kind(http: httpx.Client) -> None:
    models = {m["id"]: m for m in http.get("/api/v1/models", params={"kind": "controlnet"}).json()["models"]}
    assert {k: (m["family"], m["format"]) for k, m in models.items()} == {
        "control_tiny_canny": ("sd15", "single-file"),
        "cn-xl": ("sdxl", "diffusers"),
    }


def test_a1111_version_and_model_list(http: httpx.Client, cn_models: Path) -> None:
    assert http.get("/controlnet/version").json() == {"version": 3}
    short = legacy_hash(cn_models / "controlnet" / "control_tiny_canny.safetensors")
    assert http.get("/controlnet/model_list").json() == {"model_list": ["cn-xl", f"control_tiny_canny [{short}]"]}
    assert http.get("/controlnet/model_list", params={"update": "false"}).json()["model_list"][1].endswith("]")


def test_a1111_module_list(http: httpx.Client) -> None:
    body = http.get("/controlnet/module_list").json()
    assert set(body) == {"module_list", "module_detail"}
    assert body["module_list"][:2] == ["none", "canny"]
    assert "invert (from white bg & black line)" in body["module_list"]
    assert "softedge_hed" not in body["module_list"]  # listed only where a worker can run it
    assert body["module_detail"]["none"] == {"model_free": False, "sliders": []}
    canny = body["module_detail"]["canny"]
    assert canny["model_free"] is False
    assert [s["name"] for s in canny["sliders"]] == ["Resolution", "Canny Low Threshold", "Canny High Threshold"]
    assert canny["sliders"][1] == {"name": "Canny Low Threshold", "value": 100, "min": 1, "max": 255, "step": 1}
    assert (
        http.get("/controlnet/module_list", params={"alias_names": "true"}).json()["module_list"] == body["module_list"]
    )


def test_a1111_detect(http: httpx.Client) -> None:
    body = {
        "controlnet_module": "canny",
        "controlnet_input_images": [b64(square_png()), "data:image/png;base64," + b64(square_png())],
        "controlnet_processor_res": 64,
        "controlnet_threshold_a": 100,
        "controlnet_threshold_b": 200,
    }
    resp = http.post("/controlnet/detect", json=body)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["info"] == "Success" and len(answer["images"]) == 2
    for image in answer["images"]:
        _edges_at_square(decoded(image))
    # The legacy alias of invert, defaults (-1) for resolution and thresholds.
    inverted = http.post(
        "/controlnet/detect", json={"controlnet_module": "invert", "controlnet_input_images": [b64(square_png())]}
    ).json()["images"][0]
    assert decoded(inverted)[0, 0] == 255 and decoded(inverted)[32, 32] == 0


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"controlnet_module": "sobel", "controlnet_input_images": ["x"]}, "Module not available"),
        ({"controlnet_module": "softedge_hed", "controlnet_input_images": ["x"]}, "Module not available"),
        ({"controlnet_module": "canny", "controlnet_input_images": []}, "No image selected"),
        ({"controlnet_module": "canny", "controlnet_input_images": ["bm90IGFuIGltYWdl"]}, "controlnet_input_images.0"),
    ],
)
def test_a1111_detect_errors(http: httpx.Client, body: dict[str, Any], detail: str) -> None:
    resp = http.post("/controlnet/detect", json=body)
    assert resp.status_code == 422, resp.text
    assert detail in resp.json()["detail"]


def test_without_a_ready_worker_preprocessors_are_unavailable(client: TestClient) -> None:
    resp = client.get("/api/v1/controlnet/preprocessors")
    assert resp.status_code == 503
    assert "no worker is ready" in resp.json()["error"]["message"]
    resp = client.post("/api/v1/controlnet/detect", json={"image": b64(square_png())})
    assert resp.status_code == 503
