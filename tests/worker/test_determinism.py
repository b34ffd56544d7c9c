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


def test_same_call_twice_is_identical_and_seed_matters(worker_client: TestClient) -> None:
    first = images(run_call(worker_client, call_body()))[("job-1", 0)]
    second = images(run_call(worker_client, call_body()))[("job-1", 0)]
    other = images(
        run_call(worker_client, call_body(items=[{"job_id": "job-1", "prompt": "a red cat", "seeds": [43]}]))
    )
    assert np.array_equal(pixels(first), pixels(second))
    assert not np.array_equal(pixels(first), pixels(other[("job-1", 0)]))
