"""Finding 10: with ``--api-key alice --api-key bob``, bob listed alice's prompts and cancelled and deleted
her jobs. Jobs now belong to the key that made them; admin keys (``auth.admin_keys``) see and change all.
Also: worker URLs in /api/v1/ready only for admins; /docs, /openapi.json and /metrics keyed on request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from security_util import app_client

from ablerefusal.gateway.auth import OPEN, Principal, key_id
from ablerefusal.gateway.compat.a1111_state import A1111Run, A1111State

GOOD: dict[str, Any] = {"prompt": "alice's secret prompt", "width": 64, "height": 64, "steps": 1}
ALICE = {"Authorization": "Bearer alice-key"}
BOB = {"Authorization": "Bearer bob-key"}
ROOT = {"Authorization": "Bearer root-key"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    auth = {"api_keys": ["alice-key", "bob-key"], "admin_keys": ["root-key"]}
    with app_client(tmp_path, auth=auth) as c:
        yield c


def test_one_key_cannot_see_or_touch_anothers_jobs(client: TestClient) -> None:
    job_id = client.post("/api/v1/generate", json=GOOD, headers=ALICE).json()["id"]
    mine = client.post("/api/v1/generate", json={**GOOD, "prompt": "bob's"}, headers=BOB).json()["id"]

    # The attack: bob reads, lists, streams, cancels and deletes alice's job.
    assert client.get(f"/api/v1/generate/{job_id}", headers=BOB).status_code == 404
    assert client.get(f"/api/v1/generate/{job_id}/events", headers=BOB).status_code == 404
    assert client.post(f"/api/v1/generate/{job_id}/cancel", headers=BOB).status_code == 404
    assert client.delete(f"/api/v1/generate/{job_id}", headers=BOB).status_code == 404
    listed = client.get("/api/v1/generate", headers=BOB).json()
    assert [j["id"] for j in listed["items"]] == [mine] and listed["total"] == 1
    queue = client.get("/api/v1/queue", headers=BOB).json()
    assert [j["id"] for j in queue["queued"]] == [mine] and queue["counts"]["queued"] == 2
    assert "secret" not in str(listed) + str(queue)
    # Not found is not "forbidden": an unknown id and another key's look the same.
    unknown = client.get("/api/v1/generate/00000000-0000-4000-8000-00000000dead", headers=BOB).json()
    other = client.get(f"/api/v1/generate/{job_id}", headers=BOB).json()
    assert unknown["error"]["code"] == other["error"]["code"] == "not_found"

    # Alice's job is untouched and hers.
    job = client.get(f"/api/v1/generate/{job_id}", headers=ALICE).json()
    assert job["status"] == "queued" and job["request"]["prompt"] == GOOD["prompt"]
    assert [j["id"] for j in client.get("/api/v1/generate", headers=ALICE).json()["items"]] == [job_id]


def test_admin_keys_see_and_change_every_job(client: TestClient) -> None:
    job_id = client.post("/api/v1/generate", json=GOOD, headers=ALICE).json()["id"]
    client.post("/api/v1/generate", json=GOOD, headers=BOB)
    assert client.get("/api/v1/generate", headers=ROOT).json()["total"] == 2
    assert len(client.get("/api/v1/queue", headers=ROOT).json()["queued"]) == 2
    assert client.post(f"/api/v1/generate/{job_id}/cancel", headers=ROOT).json()["status"] == "cancelled"
    assert client.delete(f"/api/v1/generate/{job_id}", headers=ROOT).status_code == 204


def test_idempotency_keys_are_per_api_key(client: TestClient) -> None:
    retry = {"Idempotency-Key": "order-1"}
    alices = client.post("/api/v1/generate", json=GOOD, headers={**ALICE, **retry}).json()["id"]
    assert client.post("/api/v1/generate", json=GOOD, headers={**ALICE, **retry}).json()["id"] == alices
    # Bob guessing alice's Idempotency-Key gets a job of his own, not hers back.
    bobs = client.post("/api/v1/generate", json=GOOD, headers={**BOB, **retry})
    assert bobs.status_code == 202 and bobs.json()["id"] != alices
    # A conflict names the key as the client sent it, not as it is stored.
    conflict = client.post("/api/v1/generate", json={**GOOD, "steps": 2}, headers={**ALICE, **retry})
    assert conflict.status_code == 422 and "Idempotency-Key 'order-1'" in conflict.json()["error"]["message"]


def test_compat_jobs_belong_to_their_key_too(client: TestClient) -> None:
    # OpenAI and A1111 submits go through the same service; without workers they stop at "no models",
    # so ownership of their runs is checked on the A1111 state that /progress, /interrupt and /skip use.
    state = A1111State()
    alice, bob = Principal(key_id("alice-key"), False), Principal(key_id("bob-key"), False)
    state.runs.append(A1111Run(job_ids=["a"], started_at=None, owner=alice.owner))  # type: ignore[arg-type]
    assert state.current(bob) is None
    assert state.current(alice) is state.runs[0] and state.current(OPEN) is state.runs[0]


def test_key_ids_never_are_the_keys() -> None:
    assert key_id("alice-key") != "alice-key" and len(key_id("alice-key")) == 16
    assert key_id("alice-key") != key_id("bob-key")


def test_ready_shows_worker_addresses_to_admins_only(tmp_path: Path) -> None:
    auth = {"api_keys": ["alice-key"], "admin_keys": ["root-key"]}
    workers = {"local": 0, "urls": ["http://127.0.0.1:9"]}
    with app_client(tmp_path, auth=auth, workers=workers) as client:
        for headers in ({}, ALICE, {"Authorization": "Bearer wrong"}):
            body = client.get("/api/v1/ready", headers=headers).text
            assert "127.0.0.1:9" not in body, headers
        admin = client.get("/api/v1/ready", headers=ROOT).json()
        assert admin["workers"][0]["url"] == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("auth", "path"),
    [
        ({"protect_docs": True}, "/openapi.json"),
        ({"protect_docs": True}, "/docs"),
        ({"protect_metrics": True}, "/metrics"),
    ],
)
def test_docs_and_metrics_can_require_a_key(tmp_path: Path, auth: dict[str, Any], path: str) -> None:
    with app_client(tmp_path, auth={"api_keys": ["alice-key"], **auth}) as client:
        assert client.get(path).status_code == 401
        assert client.get(path, headers=ALICE).status_code == 200


def test_docs_and_metrics_stay_open_by_default(tmp_path: Path) -> None:
    with app_client(tmp_path, auth={"api_keys": ["alice-key"]}) as client:
        assert client.get("/openapi.json").status_code == 200 and client.get("/metrics").status_code == 200
