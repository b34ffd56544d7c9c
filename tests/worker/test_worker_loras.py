"""LoRAs on the worker, through its HTTP API with the tiny models and tiny LoRAs (Kohya and PEFT layouts).

Pixels are compared with pixels of the same worker (or of a fresh one over the same files); nothing is
compared with a stored image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from worker_helpers import call_body, images, pixels, run_call, wait_ready

from ablerefusal.worker.app import create_app
from ablerefusal.worker.settings import WorkerSettings

FAMILIES = ["sd15", "sdxl"]


def image(client: TestClient, model: str, **over: Any) -> np.ndarray:
    events = run_call(client, call_body(model, **over))
    assert events[-1].type == "done", events[-1]
    return pixels(images(events)[("job-1", 0)])


def lora(name: str, weight: float = 1.0) -> dict[str, Any]:
    return {"name": name, "weight": weight}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("fmt", ["kohya", "peft", "locon"])
def test_weight_zero_is_no_lora_and_weight_one_differs(adapter_client: TestClient, family: str, fmt: str) -> None:
    model = f"tiny-{family}"
    plain = image(adapter_client, model)
    zero = image(adapter_client, model, loras=[lora(f"tiny-{family}-{fmt}", 0.0)])
    one = image(adapter_client, model, loras=[lora(f"tiny-{family}-{fmt}", 1.0)])
    assert np.array_equal(zero, plain)
    assert not np.array_equal(one, plain)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_locon_adapts_the_resnet_convolutions_too(adapter_client: TestClient, family: str) -> None:
    # The LoCon file holds the kohya file's very tensors plus LoRAs of the ResNet convolutions: a different
    # image can only come from the convolutions being adapted.
    model = f"tiny-{family}"
    kohya = image(adapter_client, model, loras=[lora(f"tiny-{family}-kohya")])
    locon = image(adapter_client, model, loras=[lora(f"tiny-{family}-locon")])
    assert not np.array_equal(locon, kohya)


@pytest.mark.parametrize("family", FAMILIES)
def test_two_loras_apply_both_in_any_order(adapter_client: TestClient, family: str) -> None:
    model, a, b = f"tiny-{family}", f"tiny-{family}-kohya", f"tiny-{family}-second"
    only_a = image(adapter_client, model, loras=[lora(a)])
    only_b = image(adapter_client, model, loras=[lora(b)])
    both = image(adapter_client, model, loras=[lora(a), lora(b, 0.7)])
    reversed_order = image(adapter_client, model, loras=[lora(b, 0.7), lora(a)])
    assert not np.array_equal(both, only_a) and not np.array_equal(both, only_b)
    assert np.array_equal(both, reversed_order)


def test_prompt_tag_equals_field_and_is_not_encoded(adapter_client: TestClient) -> None:
    tagged = image(
        adapter_client,
        "tiny-sd15",
        items=[{"job_id": "job-1", "prompt": "a red cat <lora:tiny-sd15-kohya:0.8>", "seeds": [42]}],
    )
    field = image(
        adapter_client,
        "tiny-sd15",
        items=[{"job_id": "job-1", "prompt": "a red cat ", "seeds": [42]}],
        loras=[lora("tiny-sd15-kohya", 0.8)],
    )
    assert np.array_equal(tagged, field)
    # The field wins over a tag of the same name.
    overridden = image(
        adapter_client,
        "tiny-sd15",
        items=[{"job_id": "job-1", "prompt": "a red cat <lora:tiny-sd15-kohya:0.3>", "seeds": [42]}],
        loras=[lora("tiny-sd15-kohya", 0.8)],
    )
    assert np.array_equal(overridden, field)


def test_coalesced_items_with_a_lora_equal_each_alone(adapter_client: TestClient) -> None:
    items = [
        {"job_id": "a", "prompt": "a red cat", "seeds": [1, 2]},
        {"job_id": "b", "prompt": "a green dog", "seeds": [3]},
    ]
    loras = [lora("tiny-sd15-peft", 0.9)]
    together = images(run_call(adapter_client, call_body("tiny-sd15", items=items, loras=loras)))
    for item in items:
        alone = images(run_call(adapter_client, call_body("tiny-sd15", items=[item], loras=loras)))
        for key, event in alone.items():
            assert np.array_equal(pixels(event), pixels(together[key])), key


def test_infotext_and_metadata_name_the_loras(adapter_client: TestClient) -> None:
    events = run_call(
        adapter_client,
        call_body(
            "tiny-sd15",
            items=[{"job_id": "job-1", "prompt": "a cat <lora:tiny-sd15-second:0.5>", "seeds": [5]}],
            loras=[lora("tiny-sd15-kohya")],
        ),
    )
    event = images(events)[("job-1", 0)]
    listing = {m["id"]: m for m in adapter_client.get("/v1/models", params={"kind": "lora"}).json()["models"]}
    assert event.infotext.startswith("a cat <lora:tiny-sd15-second:0.5>\n")  # the prompt as written
    line = event.infotext.splitlines()[-1]
    assert 'Lora hashes: "tiny-sd15-kohya: ' in line and ", tiny-sd15-second: " in line
    assert event.metadata["loras"] == [
        {"name": "tiny-sd15-kohya", "weight": 1.0},
        {"name": "tiny-sd15-second", "weight": 0.5},
    ]
    assert listing["tiny-sd15-kohya"]["sha256"] and len(listing["tiny-sd15-kohya"]["sha256"]) == 64


def test_plain_job_after_lora_jobs_equals_a_fresh_workers(adapter_client: TestClient, adapter_models_dir: Path) -> None:
    for name in ("tiny-sd15-kohya", "tiny-sd15-peft", "tiny-sd15-second"):
        image(adapter_client, "tiny-sd15", loras=[lora(name, 1.3)])
    after = image(adapter_client, "tiny-sd15")
    settings = WorkerSettings(models_dir=adapter_models_dir, device="cpu", cache_size=1, worker_id="fresh")
    with TestClient(create_app(settings)) as fresh:
        wait_ready(fresh)
        assert np.array_equal(image(fresh, "tiny-sd15"), after)


def test_loras_load_once_and_stay_cached(adapter_client: TestClient) -> None:
    service = adapter_client.app.state.service  # type: ignore[attr-defined]
    image(adapter_client, "tiny-sdxl", loras=[lora("tiny-sdxl-peft", 0.5)])
    state = service.cache.peek("tiny-sdxl").lora_state
    loads = state.loads
    image(adapter_client, "tiny-sdxl", loras=[lora("tiny-sdxl-peft", 0.9)])
    image(adapter_client, "tiny-sdxl")
    image(adapter_client, "tiny-sdxl", loras=[lora("tiny-sdxl-peft", 0.2)])
    assert state.loads == loads
    assert service.cache.loads == 2  # the two base pipelines, never reloaded for a LoRA


def test_wrong_family_lora_is_refused_naming_it(adapter_client: TestClient) -> None:
    resp = adapter_client.post("/v1/generate", json=call_body("tiny-sd15", loras=[lora("tiny-sdxl-kohya")]))
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "invalid_request" and error["details"][0]["field"] == "loras"
    assert "tiny-sdxl-kohya" in error["message"] and "sdxl" in error["message"]


def test_unknown_lora_and_bad_tag_are_refused(adapter_client: TestClient) -> None:
    resp = adapter_client.post("/v1/generate", json=call_body("tiny-sd15", loras=[lora("nope")]))
    assert resp.status_code == 404
    assert "nope" in resp.json()["error"]["message"] and "tiny-sd15-kohya" in resp.json()["error"]["available"]
    bad = call_body("tiny-sd15", items=[{"job_id": "j", "prompt": "a <lora:tiny-sd15-kohya:lots>", "seeds": [1]}])
    resp = adapter_client.post("/v1/generate", json=bad)
    assert resp.status_code == 400
    assert resp.json()["error"]["details"][0]["field"] == "items.0.prompt"
    traversal = adapter_client.post("/v1/generate", json=call_body("tiny-sd15", loras=[lora("../tiny-sd15-kohya")]))
    assert traversal.status_code == 400 and traversal.json()["error"]["details"][0]["field"] == "loras"


def test_coalesced_items_must_share_their_prompt_loras(adapter_client: TestClient) -> None:
    items = [
        {"job_id": "a", "prompt": "a cat <lora:tiny-sd15-kohya:1>", "seeds": [1]},
        {"job_id": "b", "prompt": "a dog", "seeds": [2]},
    ]
    resp = adapter_client.post("/v1/generate", json=call_body("tiny-sd15", items=items))
    assert resp.status_code == 400 and resp.json()["error"]["details"][0]["field"] == "items"
