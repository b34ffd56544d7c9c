"""Compat endpoints that need no worker, through a real app and store: error shapes, auth, lists, png-info.
Every refused request must leave the queue empty."""

from __future__ import annotations

import base64
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from PIL.PngImagePlugin import PngInfo

API_KEY = "compat-test-key"  # the key conftest's keyed_client is configured with


def _queue_total(client: TestClient, headers: dict[str, str] | None = None) -> int:
    counts = client.get("/api/v1/queue", headers=headers).json()["counts"]
    return sum(counts.values())


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("steps", 151, "less than or equal to 150"),
        ("width", 100, "multiple of 8"),
        ("cfg_scale", 40, "less than or equal to 30"),
        ("batch_size", 9, "less than or equal to 4"),
        ("n_iter", 100, "less than or equal to 16"),
        ("prompt", "", "at least 1 character"),
    ],
)
def test_a1111_out_of_range_is_a1111_style_422(open_client: TestClient, field: str, value: object, rule: str) -> None:
    body = {"prompt": "x", field: value}
    response = open_client.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail[0]["loc"] == ["body", field] and rule in detail[0]["msg"]
    assert _queue_total(open_client) == 0


def test_a1111_missing_prompt_and_bad_json(open_client: TestClient) -> None:
    missing = open_client.post("/sdapi/v1/txt2img", json={"steps": 2})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "prompt"]
    broken = open_client.post("/sdapi/v1/txt2img", content=b"{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid"


def test_a1111_without_models_says_so(open_client: TestClient) -> None:
    response = open_client.post("/sdapi/v1/txt2img", json={"prompt": "x"})
    assert response.status_code == 503 and "no models" in response.json()["detail"]
    assert _queue_total(open_client) == 0


def test_a1111_lists(open_client: TestClient) -> None:
    samplers = open_client.get("/sdapi/v1/samplers").json()
    assert {"Euler a", "DPM++ 2M", "DPM++ 2M Karras"} <= {s["name"] for s in samplers}
    schedulers = open_client.get("/sdapi/v1/schedulers").json()
    assert [s["name"] for s in schedulers][:3] == ["automatic", "uniform", "karras"]
    for path in ("/sdapi/v1/sd-vae", "/sdapi/v1/sd-models"):
        assert open_client.get(path).json() == []
    # With no worker ready, the upscalers every worker has (issue 11), in A1111's two lists.
    upscalers = open_client.get("/sdapi/v1/upscalers").json()
    assert [u["name"] for u in upscalers] == ["None", "Lanczos", "Nearest"]
    assert set(upscalers[0]) == {"name", "model_name", "model_path", "model_url", "scale"}
    assert open_client.get("/sdapi/v1/latent-upscale-modes").json() == [{"name": "Latent"}]
    idle = open_client.get("/sdapi/v1/progress").json()
    assert idle["progress"] == 0 and idle["current_image"] is None and idle["state"]["job_count"] == 0


def _png_b64(text: dict[str, str]) -> str:
    meta = PngInfo()
    for key, value in text.items():
        meta.add_text(key, value)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG", pnginfo=meta)
    return base64.b64encode(buf.getvalue()).decode()


def test_png_info_of_foreign_png_and_bad_input(open_client: TestClient) -> None:
    image = _png_b64({"parameters": "cat\nSteps: 3, Sampler: Euler, Seed: 9, Size: 64x64", "other": "x"})
    body = open_client.post("/sdapi/v1/png-info", json={"image": image}).json()
    assert body["info"].startswith("cat\n") and body["items"] == {"other": "x"}
    assert body["parameters"]["Seed"] == "9" and body["parameters"]["Size-1"] == "64"
    bad = open_client.post("/sdapi/v1/png-info", json={"image": "@@@"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "image"]
    no_text = open_client.post("/sdapi/v1/png-info", json={"image": _png_b64({})}).json()
    assert no_text == {"info": "", "items": {}, "parameters": {}}


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"prompt": "x", "n": 9}, "n", "invalid_value"),
        ({"prompt": "x", "frobnicate": 1}, "frobnicate", "unknown_parameter"),
        ({"n": 1}, "prompt", "missing_required_parameter"),
        ({"prompt": "x", "response_format": "gif"}, "response_format", "invalid_value"),
    ],
)
def test_openai_validation_errors_have_openai_shape(
    open_client: TestClient, body: dict[str, object], param: str, code: str
) -> None:
    response = open_client.post("/v1/images/generations", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert param in error["message"]
    assert _queue_total(open_client) == 0


def test_openai_models_empty_without_workers(open_client: TestClient) -> None:
    assert open_client.get("/v1/models").json() == {"object": "list", "data": []}
    missing = open_client.get("/v1/models/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_a1111_accepts_basic_with_key_as_password_and_bearer(keyed_client: TestClient) -> None:
    assert keyed_client.get("/sdapi/v1/samplers", headers=_basic("anyone", API_KEY)).status_code == 200
    assert keyed_client.get("/sdapi/v1/samplers", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    for headers in ({}, _basic("anyone", "wrong"), _basic(API_KEY, ""), {"Authorization": "Basic %%%"}):
        refused = keyed_client.get("/sdapi/v1/samplers", headers=headers)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
    refused = keyed_client.post("/sdapi/v1/txt2img", json={"prompt": "x"}, headers=_basic("u", "wrong"))
    assert refused.status_code == 401


def test_openai_wants_bearer(keyed_client: TestClient) -> None:
    ok = keyed_client.get("/v1/models", headers={"Authorization": f"Bearer {API_KEY}"})
    assert ok.status_code == 200
    for headers in ({}, {"Authorization": "Bearer nope"}, _basic("u", API_KEY)):
        refused = keyed_client.get("/v1/models", headers=headers)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
