"""Adapter fields of POST /api/v1/generate (issue 12) that need no worker: every malformed LoRA, clip skip,
VAE or ControlNet value is a 400 naming its field and stores nothing; the models listing refuses an unknown
kind; the call a job becomes carries its adapters; the CLI's adapter options become these fields.

Names checked against the workers' listings (unknown, wrong family) are tested with a live worker in
tests/integration/test_adapters_live.py.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from PIL import Image

from ablerefusal.client.adapters import controlnet_fields, lora_fields
from ablerefusal.gateway.dispatch.call import adapter_fields
from ablerefusal.gateway.schemas import GenerateRequest
from ablerefusal.gateway.settings import Settings

GOOD: dict[str, Any] = {"prompt": "a red cube", "width": 64, "height": 64, "steps": 2}


def png_b64() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


UNIT: dict[str, Any] = {"model": "cn", "image": "placeholder"}


def assert_nothing_stored(client: TestClient, settings: Settings) -> None:
    assert client.get("/api/v1/generate").json()["total"] == 0
    inputs = Path(settings.storage.input_dir)
    assert not inputs.exists() or not [p for p in inputs.rglob("*") if p.is_file()], "an upload was stored"


CASES = [
    ({"loras": [{"name": ""}]}, ["loras.0.name"]),
    ({"loras": [{"name": "a", "weight": 4.5}]}, ["loras.0.weight"]),
    ({"loras": [{"name": "a", "weight": -5}]}, ["loras.0.weight"]),
    ({"loras": [{"name": "a"}, {"name": "b", "strength": 1}]}, ["loras.1.strength"]),
    ({"loras": [{"name": f"l{i}"} for i in range(9)]}, ["loras"]),
    ({"loras": "a"}, ["loras"]),
    ({"clip_skip": 0}, ["clip_skip"]),
    ({"clip_skip": 13}, ["clip_skip"]),
    ({"vae": ""}, ["vae"]),
    ({"controlnets": [{"image": "x"}]}, ["controlnets.0.model"]),
    ({"controlnets": [{"model": "cn"}]}, ["controlnets.0.image"]),
    ({"controlnets": [{**UNIT, "weight": 2.5}]}, ["controlnets.0.weight"]),
    ({"controlnets": [{**UNIT, "guidance_start": -0.1}]}, ["controlnets.0.guidance_start"]),
    ({"controlnets": [{**UNIT, "guidance_end": 1.5}]}, ["controlnets.0.guidance_end"]),
    ({"controlnets": [{**UNIT, "control_mode": "loud"}]}, ["controlnets.0.control_mode"]),
    ({"controlnets": [{**UNIT, "resize_mode": "squash"}]}, ["controlnets.0.resize_mode"]),
    ({"controlnets": [{**UNIT, "processor_res": 32}]}, ["controlnets.0.processor_res"]),
    ({"controlnets": [UNIT] * 5}, ["controlnets"]),
    # Rules beyond the field types, applied at submit.
    ({"controlnets": [{**UNIT, "guidance_start": 0.6, "guidance_end": 0.5}]}, ["controlnets.0.guidance_end"]),
    ({"prompt": "a cat <lora::0.5>"}, ["prompt"]),
    ({"prompt": "a cat <lora:ink:strong>"}, ["prompt"]),
    ({"prompt": "a cat <lora:ink:9>"}, ["prompt"]),
    ({"prompt": "a cat <lora:ink:1:0.5>"}, ["prompt"]),
    (
        {"prompt": " ".join(f"<lora:l{i}:1>" for i in range(5)), "loras": [{"name": f"m{i}"} for i in range(4)]},
        ["loras"],
    ),
    ({"controlnets": [{**UNIT, "image": "not an image"}]}, ["controlnets.0.image"]),
]


@pytest.mark.parametrize(("change", "fields"), CASES, ids=[f"{f[0]}-{i}" for i, (_, f) in enumerate(CASES)])
def test_bad_adapter_field_gets_400_naming_it(
    client: TestClient, settings: Settings, change: dict[str, Any], fields: list[str]
) -> None:
    resp = client.post("/api/v1/generate", json={**GOOD, **change})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_request"
    assert [d["field"] for d in error["details"]] == fields
    assert all(d["message"] for d in error["details"])
    assert_nothing_stored(client, settings)


def test_unknown_upload_id_of_a_control_image_is_400(client: TestClient, settings: Settings) -> None:
    unit = {**UNIT, "image": "f" * 64}
    resp = client.post("/api/v1/generate", json={**GOOD, "controlnets": [unit]})
    assert resp.status_code == 400, resp.text
    assert [d["field"] for d in resp.json()["error"]["details"]] == ["controlnets.0.image"]
    assert_nothing_stored(client, settings)


def test_adapter_job_is_stored_with_its_control_image_as_an_upload(client: TestClient) -> None:
    # No worker is ready, so names cannot be checked yet (as for model ids): the job is accepted and waits.
    body = {
        **GOOD,
        "prompt": "a cat <lora:ink:0.8>",
        "loras": [{"name": "sky", "weight": 0.5}],
        "clip_skip": 2,
        "vae": "vae-ft",
        "controlnets": [{**UNIT, "image": png_b64(), "preprocessor": "canny", "threshold_a": 50}],
    }
    resp = client.post("/api/v1/generate", json=body)
    assert resp.status_code == 202, resp.text
    stored = resp.json()["request"]
    upload_id = stored["controlnets"][0]["image"]
    assert len(upload_id) == 64 and client.get(f"/api/v1/uploads/{upload_id}").status_code == 200
    assert stored["loras"] == [{"name": "sky", "weight": 0.5}] and stored["prompt"] == body["prompt"]
    assert (stored["clip_skip"], stored["vae"]) == (2, "vae-ft")
    assert stored["controlnets"][0]["threshold_a"] == 50 and stored["controlnets"][0]["control_mode"] == "balanced"


def test_models_kind_is_validated(client: TestClient) -> None:
    resp = client.get("/api/v1/models", params={"kind": "hypernetwork"})
    assert resp.status_code == 400
    assert [d["field"] for d in resp.json()["error"]["details"]] == ["kind"]
    for kind in ("checkpoint", "lora", "embedding", "controlnet", "vae", "upscaler"):
        resp = client.get("/api/v1/models", params={"kind": kind})
        assert resp.status_code == 200 and resp.json()["models"] == [], kind


def test_call_carries_the_merged_lora_set_and_units_without_images() -> None:
    head = GenerateRequest(
        prompt="a cat <lora:ink:0.2> <lora:sky>",
        loras=[{"name": "ink", "weight": 0.8}],
        clip_skip=2,
        vae="vae-ft",
        controlnets=[{"model": "cn", "image": "a" * 64, "preprocessor": "canny", "weight": 0.7}],
    )
    fields = adapter_fields(head)
    assert [(r.name, r.weight) for r in fields["loras"]] == [("ink", 0.8), ("sky", 1.0)]
    assert (fields["clip_skip"], fields["vae"]) == (2, "vae-ft")
    (unit,) = fields["controlnets"]
    assert (unit.model, unit.preprocessor, unit.weight) == ("cn", "canny", 0.7)
    assert "image" not in unit.model_dump()
    # A plain job's call carries none of these fields (it reads the same to a worker that predates them).
    assert adapter_fields(GenerateRequest(prompt="plain")) == {}


def test_cli_options_become_fields() -> None:
    assert lora_fields(["ink:0.8", "sky", "odd:name:-1"]) == [
        {"name": "ink", "weight": 0.8},
        {"name": "sky", "weight": 1.0},
        {"name": "odd:name", "weight": -1.0},
    ]
    units, images = controlnet_fields(["cn:edges.png:canny:0.5", "cn2:C:\\maps\\d.png", "cn3:x.png:none"])
    assert units == [
        {"model": "cn", "weight": 0.5, "preprocessor": "canny"},
        {"model": "cn2"},
        {"model": "cn3", "preprocessor": "none"},
    ]
    assert [str(p) for p in images] == ["edges.png", "C:\\maps\\d.png", "x.png"]
    for bad in (["cn"], [":x.png"], ["cn:x.png:canny:strong"]):
        with pytest.raises(typer.BadParameter):
            controlnet_fields(bad)
    with pytest.raises(typer.BadParameter):
        lora_fields(["ink:heavy"])
