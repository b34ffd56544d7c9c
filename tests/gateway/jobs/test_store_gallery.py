"""Gallery reads of the job store (SQLite and PostgreSQL): images newest first, filters, owner scope."""

from __future__ import annotations

from typing import Any

from store_helpers import req

from ablerefusal.gateway.jobs import JobStore


def finished(store: JobStore, images: int = 1, owner: str | None = None, **request: Any) -> str:
    """A completed job with ``images`` result rows; its id."""
    job_id = store.submit(req(batch_size=images, **request), owner=owner).job.id
    claimed = store.claim("w", max_images=images)[0]
    assert claimed.id == job_id
    for index in range(images):
        store.add_result(
            job_id, index, f"{job_id}/{index}.png", 100 + index, {}, f"info {index}", attempt=claimed.attempt
        )
    store.complete(job_id, attempt=claimed.attempt)
    return job_id


def keys(page: tuple[int, list[Any]]) -> list[tuple[str, int]]:
    return [(r.job_id, r.image_index) for r in page[1]]


def test_images_newest_job_first_in_index_order_and_paged(store: JobStore) -> None:
    old = finished(store, images=2, prompt="an old barn")
    new = finished(store, images=3, prompt="a new tower")
    store.submit(req(prompt="still queued"))  # no images: not in the gallery
    total, rows = store.gallery_page(offset=0, limit=10)
    assert total == 5
    assert keys((total, rows)) == [(new, 0), (new, 1), (new, 2), (old, 0), (old, 1)]
    assert rows[0].path == f"{new}/0.png" and rows[0].seed == 100 and rows[0].request["prompt"] == "a new tower"
    assert keys(store.gallery_page(offset=2, limit=2)) == [(new, 2), (old, 0)]


def test_model_and_prompt_filters(store: JobStore) -> None:
    cat = finished(store, prompt="A Tabby CAT on a mat", model="tiny")
    finished(store, prompt="a dog", model="tiny")
    other = finished(store, prompt="a cat in space", model="big")
    assert keys(store.gallery_page(offset=0, limit=10, text="cat")) == [(other, 0), (cat, 0)]
    assert keys(store.gallery_page(offset=0, limit=10, text="tabby cat", model="tiny")) == [(cat, 0)]
    assert keys(store.gallery_page(offset=0, limit=10, model="big")) == [(other, 0)]
    assert store.gallery_page(offset=0, limit=10, model="none-such") == (0, [])
    assert store.gallery_models() == ["big", "tiny"]


def test_like_wildcards_in_the_search_text_are_literal(store: JobStore) -> None:
    percent = finished(store, prompt="100% sharp")
    finished(store, prompt="100 x sharp")
    under = finished(store, prompt="snake_case")
    finished(store, prompt="snakeXcase")
    assert keys(store.gallery_page(offset=0, limit=10, text="0% s")) == [(percent, 0)]
    assert keys(store.gallery_page(offset=0, limit=10, text="e_c")) == [(under, 0)]
    assert keys(store.gallery_page(offset=0, limit=10, text="\\")) == []


def test_owner_sees_only_its_images(store: JobStore) -> None:
    mine = finished(store, owner="k1", model="tiny")
    finished(store, owner="k2", model="big")
    assert keys(store.gallery_page(offset=0, limit=10, owner="k1")) == [(mine, 0)]
    assert store.gallery_models(owner="k1") == ["tiny"]


def test_result_path(store: JobStore) -> None:
    job_id = finished(store, images=2)
    assert store.result_path(job_id, 1) == f"{job_id}/1.png"
    assert store.result_path(job_id, 2) is None
    assert store.result_path("no-such-job", 0) is None
