"""A1111 prompt syntax, clip skip, VAE choice and embeddings by name, through the worker's HTTP API (tiny
models, CPU). Every comparison is between images of the same worker."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from worker_helpers import call_body, images, pixels, run_call

FAMILIES = ["sd15", "sdxl"]


def image(client: TestClient, model: str, prompt: str = "a red cat", negative: str = "", **over: Any) -> np.ndarray:
    item = {"job_id": "job-1", "prompt": prompt, "negative_prompt": negative, "seeds": [42]}
    events = run_call(client, call_body(model, items=[item], **over))
    assert events[-1].type == "done", events[-1]
    return pixels(images(events)[("job-1", 0)])


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_weights_change_the_image(adapter_client: TestClient, family: str) -> None:
    model = f"tiny-{family}"
    plain = image(adapter_client, model, "a cat")
    assert not np.array_equal(image(adapter_client, model, "a (cat:1.5)"), plain)
    assert not np.array_equal(image(adapter_client, model, "a [cat]"), plain)
    # Weight 1 is plain text; escaped brackets are the characters themselves, so they change the tokens.
    assert np.array_equal(image(adapter_client, model, "a (cat:1)"), plain)
    escaped = image(adapter_client, model, r"a \(cat\)")
    assert not np.array_equal(escaped, plain) and not np.array_equal(escaped, image(adapter_client, model, "a (cat)"))


@pytest.mark.parametrize("family", FAMILIES)
def test_long_prompt_and_break(adapter_client: TestClient, family: str) -> None:
    model = f"tiny-{family}"
    words = ", ".join(f"word{i}" for i in range(60))  # about 300 tokens with the tiny byte-level tokenizer
    long = image(adapter_client, model, words)
    cut = image(adapter_client, model, words[:40])
    assert not np.array_equal(long, cut)
    assert not np.array_equal(
        image(adapter_client, model, "a red BREAK cat"), image(adapter_client, model, "a red cat")
    )


def test_coalesced_prompts_of_different_lengths_equal_each_alone(adapter_client: TestClient) -> None:
    items = [
        {"job_id": "long", "prompt": ", ".join(f"word{i}" for i in range(50)), "seeds": [1]},
        {"job_id": "short", "prompt": "a (small:1.2) dog", "negative_prompt": "blurry BREAK dark", "seeds": [2, 3]},
    ]
    # Previews on: each pass previews its own first live row.
    events = run_call(adapter_client, call_body("tiny-sd15", items=items, previews=True))
    together = images(events)
    assert set(together) == {("long", 0), ("short", 0), ("short", 1)}
    assert all(e.preview for e in events if e.type == "progress")
    for item in items:
        alone = images(run_call(adapter_client, call_body("tiny-sd15", items=[item])))
        for key, event in alone.items():
            assert np.array_equal(pixels(event), pixels(together[key])), key


@pytest.mark.parametrize("family", FAMILIES)
def test_clip_skip(adapter_client: TestClient, family: str) -> None:
    model = f"tiny-{family}"
    plain = image(adapter_client, model)
    assert np.array_equal(image(adapter_client, model, clip_skip=1), plain)
    events = run_call(adapter_client, call_body(model, clip_skip=2))
    event = images(events)[("job-1", 0)]
    assert not np.array_equal(pixels(event), plain)
    assert "Clip skip: 2" in event.infotext and event.metadata["clip_skip"] == 2
    # The tiny text encoders have 2 layers: clip skip 3 would leave none.
    bad = run_call(adapter_client, call_body(model, clip_skip=3))
    assert bad[-1].type == "error" and bad[-1].code == "invalid_request" and "clip_skip" in bad[-1].message
    assert np.array_equal(image(adapter_client, model), plain)  # the encoders got all their layers back


@pytest.mark.parametrize("family", FAMILIES)
def test_vae_choice_swaps_and_restores(adapter_client: TestClient, family: str) -> None:
    model = f"tiny-{family}"
    plain = image(adapter_client, model)
    events = run_call(adapter_client, call_body(model, vae="tiny-vae"))
    event = images(events)[("job-1", 0)]
    assert not np.array_equal(pixels(event), plain)
    listing = {m["id"]: m for m in adapter_client.get("/v1/models", params={"kind": "vae"}).json()["models"]}
    assert f"VAE hash: {listing['tiny-vae']['sha256'][:10]}, VAE: tiny-vae.safetensors" in event.infotext
    assert np.array_equal(image(adapter_client, model), plain)
    missing = adapter_client.post("/v1/generate", json=call_body(model, vae="no-such-vae"))
    assert missing.status_code == 404 and missing.json()["error"]["details"][0]["field"] == "vae"


@pytest.mark.parametrize("family", FAMILIES)
def test_embedding_used_by_name(adapter_client: TestClient, family: str) -> None:
    model, name = f"tiny-{family}", f"tiny-{family}-embedding"
    # A word of the same length that is no embedding: the difference comes from the embedding's vectors.
    other = image(adapter_client, model, f"a red cat {name[:-1]}x")
    events = run_call(
        adapter_client, call_body(model, items=[{"job_id": "job-1", "prompt": f"a red cat {name}", "seeds": [42]}])
    )
    event = images(events)[("job-1", 0)]
    assert not np.array_equal(pixels(event), other)
    assert f'TI hashes: "{name}: ' in event.infotext and event.metadata["embeddings"] == [name]
    # In the negative prompt too, and afterwards the tokenizer is as before.
    assert not np.array_equal(image(adapter_client, model, "a red cat", negative=name), image(adapter_client, model))
    assert np.array_equal(image(adapter_client, model, f"a red cat {name[:-1]}x"), other)


def test_model_kinds_listing(adapter_client: TestClient) -> None:
    def ids(kind: str) -> dict[str, str]:
        resp = adapter_client.get("/v1/models", params={"kind": kind})
        assert resp.status_code == 200
        return {m["id"]: m["family"] for m in resp.json()["models"] if m["kind"] == kind}

    assert ids("lora") == {
        **{f"tiny-{f}-{k}": f for f in FAMILIES for k in ("kohya", "peft", "second", "locon")},
    }
    assert ids("embedding") == {f"tiny-{f}-embedding": f for f in FAMILIES}
    assert set(ids("vae")) == {"tiny-vae"}
    assert set(ids("checkpoint")) == {"tiny-sd15", "tiny-sdxl"}
    bad = adapter_client.get("/v1/models", params={"kind": "hypernetwork"})
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["field"] == "kind"
