"""Every validation rule of POST /api/v1/generate: 400 naming the field and the rule, nothing stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ablerefusal.gateway.app import create_app
from ablerefusal.gateway.settings import Settings

GOOD: dict[str, Any] = {"prompt": "a red cube", "width": 64, "height": 64, "steps": 2}

CASES = [
    ({"prompt": ""}, "prompt"),
    ({"prompt": "   "}, "prompt"),
    ({"prompt": None}, "prompt"),
    ({"width": 63}, "width"),
    ({"width": 60}, "width"),
    ({"width": 2056}, "width"),
    ({"height": 56}, "height"),
    ({"height": 100}, "height"),
    ({"steps": 0}, "steps"),
    ({"steps": 151}, "steps"),
    ({"cfg_scale": 0.5}, "cfg_scale"),
    ({"cfg_scale": 30.5}, "cfg_scale"),
    ({"seed": -2}, "seed"),
    ({"seed": 2**32}, "seed"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 5}, "batch_size"),
    ({"priority": 101}, "priority"),
    ({"timeout_s": 0}, "timeout_s"),
    ({"timeout_s": 10_000}, "timeout_s"),
    ({"sampler": "no_such_sampler"}, "sampler"),
    ({"unknown_field": 1}, "unknown_field"),
    ({"steps": "many"}, "steps"),
]


def assert_nothing_stored(client: TestClient) -> None:
    assert client.get("/api/v1/generate").json()["total"] == 0
    assert client.get("/api/v1/queue").json()["counts"]["queued"] == 0


@pytest.mark.parametrize(("change", "field"), CASES, ids=[f"{f}-{i}" for i, (_, f) in enumerate(CASES)])
def test_bad_field_gets_400_naming_it(client: TestClient, change: dict[str, Any], field: str) -> None:
    resp = client.post("/api/v1/generate", json={**GOOD, **change})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_request"
    assert [d["field"] for d in error["details"]] == [field]
    assert error["details"][0]["message"]
    assert_nothing_stored(client)


def test_several_bad_fields_get_one_entry_each(client: TestClient) -> None:
    resp = client.post("/api/v1/generate", json={"prompt": "x", "width": 65, "steps": 0, "batch_size": 9})
    assert resp.status_code == 400
    fields = sorted(d["field"] for d in resp.json()["error"]["details"])
    assert fields == ["batch_size", "steps", "width"]
    assert_nothing_stored(client)


def test_unknown_sampler_lists_valid_ids(client: TestClient) -> None:
    resp = client.post("/api/v1/generate", json={**GOOD, "sampler": "bogus"})
    available = resp.json()["error"]["available"]
    assert "euler_a" in available and "dpmpp_2m_karras" in available


def test_a1111_sampler_name_is_accepted_and_stored_as_id(client: TestClient) -> None:
    resp = client.post("/api/v1/generate", json={**GOOD, "sampler": "DPM++ 2M Karras"})
    assert resp.status_code == 202, resp.text
    assert resp.json()["request"]["sampler"] == "dpmpp_2m_karras"


def test_malformed_json_is_400(client: TestClient) -> None:
    resp = client.post("/api/v1/generate", content=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["error"]["details"][0]["field"] == "body"
    assert_nothing_stored(client)


def test_body_over_limit_is_413(client: TestClient, settings: Settings) -> None:
    big = {**GOOD, "prompt": "x" * (settings.server.max_body_bytes + 10)}
    resp = client.post("/api/v1/generate", json=big)
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "payload_too_large"
    assert_nothing_stored(client)


def test_prompt_length_limit_is_configurable(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(queue={"max_prompt_length": 10})
    with TestClient(create_app(settings)) as client:
        resp = client.post("/api/v1/generate", json={**GOOD, "prompt": "x" * 11})
        assert resp.status_code == 400
        detail = resp.json()["error"]["details"][0]
        assert detail["field"] == "prompt" and "10" in detail["message"]
        assert client.post("/api/v1/generate", json={**GOOD, "prompt": "x" * 10}).status_code == 202


def test_bad_query_parameters_are_400(client: TestClient) -> None:
    resp = client.post("/api/v1/generate?wait=-1", json=GOOD)
    assert resp.status_code == 400 and resp.json()["error"]["details"][0]["field"] == "wait"
    resp = client.get("/api/v1/generate?limit=0&status=nope")
    assert resp.status_code == 400
    assert sorted(d["field"] for d in resp.json()["error"]["details"]) == ["limit", "status"]
    assert_nothing_stored(client)


def test_unknown_job_is_404(client: TestClient) -> None:
    for method, path in [("GET", "/x"), ("POST", "/x/cancel"), ("DELETE", "/x"), ("GET", "/x/events")]:
        resp = client.request(method, f"/api/v1/generate{path}")
        assert resp.status_code == 404, (method, path)
        assert resp.json()["error"]["code"] == "not_found"
