"""Job routes in front of the store and dispatcher, in-process on a real SQLite store with no workers:
idempotent retries, the preview URL, and deleting a job's files off the event loop."""

from __future__ import annotations

import asyncio
import base64
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ablerefusal.gateway.jobs import JobStore
from ablerefusal.gateway.settings import Settings

BODY = {"prompt": "a red cube", "width": 64, "height": 64, "steps": 2}


def store_of(client: TestClient) -> JobStore:
    store: JobStore = client.app.state.runtime.store  # type: ignore[attr-defined]
    return store


def jpeg_base64(color: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="JPEG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_an_identical_retry_replays_after_the_default_model_changed(client: TestClient, settings: Settings) -> None:
    # Accepted before any worker was ready: no default model yet, so the job names none.
    first = client.post("/api/v1/generate", json=BODY, headers={"Idempotency-Key": "retry-1"})
    assert first.status_code == 202, first.text
    assert first.json()["request"]["model"] is None
    # A worker came up meanwhile, so a default exists now; the client retries the very same POST.
    settings.inference.default_model = "tiny-sd15"
    again = client.post("/api/v1/generate", json=BODY, headers={"Idempotency-Key": "retry-1"})
    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    # Another body under the same key is still refused.
    other = client.post(
        "/api/v1/generate", json={**BODY, "prompt": "a blue cube"}, headers={"Idempotency-Key": "retry-1"}
    )
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_conflict"
    assert store_of(client).counts().queued == 1


def test_previews_are_served_at_their_own_url_not_in_job_reads(client: TestClient) -> None:
    job_id = client.post("/api/v1/generate", json=BODY).json()["id"]
    store = store_of(client)
    [claim] = store.claim("w0")
    assert client.get(f"/api/v1/generate/{job_id}").json()["preview_url"] is None
    assert client.get(f"/api/v1/generate/{job_id}/preview").status_code == 404

    red = jpeg_base64((220, 20, 20))
    store.record_progress([claim], 1, 2, {job_id: red})
    job = client.get(f"/api/v1/generate/{job_id}").json()
    assert job["preview"] is None and job["preview_url"] == f"/api/v1/generate/{job_id}/preview"
    queue = client.get("/api/v1/queue")
    assert red not in queue.text and queue.json()["running"][0]["preview_url"] == job["preview_url"]
    image = client.get(job["preview_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.headers["cache-control"] == "no-store"
    assert image.content == base64.b64decode(red)
    assert Image.open(io.BytesIO(image.content)).size == (8, 8)

    store.complete(job_id, attempt=claim.attempt)
    gone = client.get(f"/api/v1/generate/{job_id}/preview")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/generate/no-such-job/preview").status_code == 404


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_deleting_a_job_touches_files_off_the_event_loop(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = client.post("/api/v1/generate", json=BODY).json()["id"]
    store = store_of(client)
    [claim] = store.claim("w0")
    folder = settings.storage.output_dir / job_id
    folder.mkdir(parents=True)
    (folder / "0.png").write_bytes(b"png")
    store.add_result(job_id, 0, f"{job_id}/0.png", 7, {}, "", attempt=claim.attempt)
    store.complete(job_id, attempt=claim.attempt)

    calls: list[bool] = []
    outputs = client.app.state.service.outputs  # type: ignore[attr-defined]
    delete_prefix = outputs.delete_prefix

    def spy(prefix: str) -> int:  # records where the real deletion runs, then runs it
        calls.append(_on_event_loop())
        return int(delete_prefix(prefix))

    monkeypatch.setattr(outputs, "delete_prefix", spy)
    assert client.delete(f"/api/v1/generate/{job_id}").status_code == 204
    assert calls == [False]
    assert not folder.exists()


def test_a_synchronous_submit_starts_waiting_from_the_submit_answer(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The submit's answer is the job as stored, so waiting on it needs no second read of the row: with no
    # worker the job stays queued, and the only read is the one at the end of the wait (408 with the job).
    store = store_of(client)
    reads: list[str] = []
    real_get = store.get

    def counted(job_id: str) -> object:
        reads.append(job_id)
        return real_get(job_id)

    monkeypatch.setattr(store, "get", counted)
    resp = client.post("/api/v1/generate", params={"wait": 0.3}, json=BODY)
    assert resp.status_code == 408, resp.text
    body = resp.json()
    assert body["error"]["code"] == "timeout" and body["job"]["status"] == "queued"
    assert reads == [body["job"]["id"]]
