"""Same seed → same pixels; on CPU image i of seed S equals the single image of seed S+i, across items too."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from worker_helpers import call_body, images, pixels, run_call


@pytest.mark.parametrize("model", ["tiny-sd15", "tiny-sdxl"])
@pytest.mark.parametrize("sampler", ["euler_a", "dpmpp_sde"])
def test_batch_image_equals_single_with_seed_plus_i(worker_client: TestClient, model: str, sampler: str) -> None:
    batch = images(run_call(worker_client, call_body(model, sampler=sampler, items=[
        {"job_id": "j", "prompt": "a lighthouse", "seeds": [500, 501, 502]},
    ])))  # fmt: skip
    for i in range(3):
        single = images(run_call(worker_client, call_body(model, sampler=sampler, items=[
            {"job_id": "j", "prompt": "a lighthouse", "seeds": [500 + i]},
        ])))  # fmt: skip
        assert np.array_equal(pixels(batch[("j", i)]), pixels(single[("j", 0)])), f"image {i}"


@pytest.mark.parametrize("model", ["tiny-sd15", "tiny-sdxl"])
def test_item_of_a_coalesced_call_equals_the_job_alone(worker_client: TestClient, model: str) -> None:
    items = [
        {"job_id": "a", "prompt": "a forest", "negative_prompt": "", "seeds": [1, 2]},
        {"job_id": "b", "prompt": "a desert at night", "negative_prompt": "people", "seeds": [9]},
    ]
    together = images(run_call(worker_client, call_body(model, items=items)))
    for item in items:
        alone = images(run_call(worker_client, call_body(model, items=[item])))
        for (job, idx), event in alone.items():
            assert np.array_equal(pixels(event), pixels(together[(job, idx)])), (job, idx)


@pytest.mark.parametrize("model", ["tiny-sd15", "tiny-sdxl"])
def test_items_with_their_own_cfg_scale_equal_the_jobs_alone(worker_client: TestClient, model: str) -> None:
    # The call's cfg_scale is 7; items "b" and "c" carry their own, so guidance differs per image.
    items = [
        {"job_id": "a", "prompt": "a forest", "seeds": [1, 2]},
        {"job_id": "b", "prompt": "a desert at night", "negative_prompt": "people", "seeds": [9], "cfg_scale": 5.0},
        {"job_id": "c", "prompt": "a harbour", "seeds": [4], "cfg_scale": 9.3},
    ]
    together = images(run_call(worker_client, call_body(model, cfg_scale=7.0, items=items)))
    for item in items:
        cfg = item.pop("cfg_scale", 7.0)
        alone = images(run_call(worker_client, call_body(model, cfg_scale=cfg, items=[item])))
        for (job, idx), event in alone.items():
            assert np.array_equal(pixels(event), pixels(together[(job, idx)])), (job, idx)
            # The PNG's parameters name the scale the image was made with, not the call's.
            assert together[(job, idx)].metadata["cfg_scale"] == cfg
            assert f"CFG scale: {cfg:g}" in together[(job, idx)].infotext
    # Guidance matters: the same seed at another scale is another image.
    other = images(run_call(worker_client, call_body(model, cfg_scale=9.3, items=[items[0]])))
    assert not np.array_equal(pixels(other[("a", 0)]), pixels(together[("a", 0)]))


def test_same_call_twice_is_identical_and_seed_matters(worker_client: TestClient) -> None:
    first = images(run_call(worker_client, call_body()))[("job-1", 0)]
    second = images(run_call(worker_client, call_body()))[("job-1", 0)]
    other = images(
        run_call(worker_client, call_body(items=[{"job_id": "job-1", "prompt": "a red cat", "seeds": [43]}]))
    )
    assert np.array_equal(pixels(first), pixels(second))
    assert not np.array_equal(pixels(first), pixels(other[("job-1", 0)]))
