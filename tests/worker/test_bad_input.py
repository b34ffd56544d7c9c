"""Every bad input gets a 400 ErrorResponse naming the field (never FastAPI's 422), or 404 for a model."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from worker_helpers import call_body, run_call

ITEM = {"job_id": "j", "prompt": "p", "seeds": [1]}


def _item(**over: Any) -> dict[str, Any]:
    return {**ITEM, **over}


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("width not multiple of 8", call_body(width=70), "width"),
    ("width too small", call_body(width=32), "width"),
    ("height too large", call_body(height=4096), "height"),
    ("steps zero", call_body(steps=0), "steps"),
    ("steps too many", call_body(steps=151), "steps"),
    ("cfg too low", call_body(cfg_scale=0.5), "cfg_scale"),
    ("cfg too high", call_body(cfg_scale=31), "cfg_scale"),
    ("cfg not a number", call_body(cfg_scale="high"), "cfg_scale"),
    ("no items", call_body(items=[]), "items"),
    ("empty prompt", call_body(items=[_item(prompt="")]), "items.0.prompt"),
    ("no seeds", call_body(items=[_item(seeds=[])]), "items.0.seeds"),
    ("negative seed", call_body(items=[_item(seeds=[-1])]), "items.0.seeds.0"),
    ("seed too large", call_body(items=[_item(seeds=[2**32])]), "items.0.seeds.0"),
    ("too many seeds", call_body(items=[_item(seeds=[1, 2, 3, 4, 5])]), "items.0.seeds"),
    ("empty job id", call_body(items=[_item(job_id="")]), "items.0.job_id"),
    ("missing model", {k: v for k, v in call_body().items() if k != "model"}, "model"),
    ("unknown field", call_body(colour="red"), "colour"),
    ("preview_every zero", call_body(preview_every=0), "preview_every"),
    ("bad memory option", call_body(memory={"turbo": True}), "memory.turbo"),
    ("duplicate job ids", call_body(items=[ITEM, ITEM]), "items"),
    ("too many images", call_body(items=[_item(job_id=f"j{i}", seeds=[1, 2, 3, 4]) for i in range(5)]), "items"),
    ("item cfg too high", call_body(items=[_item(cfg_scale=30.5)]), "items.0.cfg_scale"),
    (
        "guided and unguided items",
        call_body(cfg_scale=7.0, items=[ITEM, _item(job_id="k", cfg_scale=1.0)]),
        "items",
    ),
    ("unknown sampler", call_body(sampler="warp drive"), "sampler"),
    ("traversal model id", call_body(model="../tiny-sd15"), "model"),
    ("path model id", call_body(model="sub/dir/tiny-sd15"), "model"),
    ("absolute model id", call_body(model="/etc/passwd"), "model"),
    ("dotdot model id", call_body(model=".."), "model"),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD, ids=[c for c, _, _ in BAD])
def test_bad_body_is_400_naming_the_field(
    worker_client: TestClient, case: str, body: dict[str, Any], field: str
) -> None:
    resp = worker_client.post("/v1/generate", json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_request" and error["retryable"] is False
    assert field in [d["field"] for d in error["details"]], error
    assert field.split(".")[0] in error["message"]


def test_unknown_sampler_lists_the_valid_ones(worker_client: TestClient) -> None:
    error = worker_client.post("/v1/generate", json=call_body(sampler="nope")).json()["error"]
    assert "euler_a" in error["available"] and "dpmpp_2m_karras" in error["available"]


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b'"text"'])
def test_non_object_bodies_are_400(worker_client: TestClient, raw: bytes) -> None:
    resp = worker_client.post("/v1/generate", content=raw, headers={"content-type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "invalid_request"


def test_unknown_model_is_404_with_available_ids(worker_client: TestClient) -> None:
    resp = worker_client.post("/v1/generate", json=call_body(model="sd-missing"))
    assert resp.status_code == 404
    error = resp.json()["error"]
    assert error["code"] == "model_not_found"
    assert error["available"] == ["tiny-sd15", "tiny-sd15-single", "tiny-sdxl", "tiny-sdxl-single"]


def test_worker_keeps_serving_after_bad_requests(worker_client: TestClient) -> None:
    for _, body, _ in BAD[:5]:
        worker_client.post("/v1/generate", json=body)
    assert run_call(worker_client, call_body())[-1].type == "done"
