"""/api/v1/workers in-process on a real SQLite store: registering and removing shared workers (admin keys
only), with configured URLs recorded at start."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from ablerefusal.gateway.app import create_app
from ablerefusal.gateway.settings import Settings

ADMIN = {"Authorization": "Bearer admin-key"}
USER = {"Authorization": "Bearer user-key"}


def keyed(make_settings: Callable[..., Settings], **workers: object) -> Settings:
    return make_settings(auth={"api_keys": ["user-key"], "admin_keys": ["admin-key"]}, workers=workers)


def test_admins_register_list_and_remove_workers(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(keyed(make_settings))) as client:
        made = client.post("/api/v1/workers", json={"url": "http://127.0.0.1:9/"}, headers=ADMIN)
        assert made.status_code == 201, made.text
        worker = made.json()
        assert worker["url"] == "http://127.0.0.1:9" and worker["source"] == "api" and worker["id"].startswith("w-")

        again = client.post("/api/v1/workers", json={"url": "http://127.0.0.1:9"}, headers=ADMIN)
        assert again.status_code == 200 and again.json()["id"] == worker["id"]

        listed = client.get("/api/v1/workers", headers=ADMIN).json()
        assert [w["id"] for w in listed["workers"]] == [worker["id"]]
        assert listed["gateway_id"]
        # Nothing answers on port 9: this gateway probes it, and takes no lease on a worker that is not ready.
        assert listed["workers"][0]["held_by"] is None
        ready = client.get("/api/v1/ready", headers=ADMIN).json()
        assert [w["url"] for w in ready["workers"]] == ["http://127.0.0.1:9"]

        gone = client.delete(f"/api/v1/workers/{worker['id']}", headers=ADMIN)
        assert gone.status_code == 200 and gone.json()["url"] == "http://127.0.0.1:9"
        assert client.get("/api/v1/workers", headers=ADMIN).json()["workers"] == []
        assert client.get("/api/v1/ready", headers=ADMIN).json()["workers"] == []
        missing = client.delete(f"/api/v1/workers/{worker['id']}", headers=ADMIN)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_other_keys_may_not_manage_workers(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(keyed(make_settings))) as client:
        for response in (
            client.get("/api/v1/workers", headers=USER),
            client.post("/api/v1/workers", json={"url": "http://127.0.0.1:9"}, headers=USER),
            client.delete("/api/v1/workers/w-123", headers=USER),
        ):
            assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
        assert client.get("/api/v1/workers").status_code == 401
        assert client.get("/api/v1/workers", headers=ADMIN).json()["workers"] == []


def test_bad_registrations_name_the_field_and_record_nothing(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(keyed(make_settings))) as client:
        for body, rule in (
            ({"url": "127.0.0.1:8001"}, "http://"),
            ({"url": "http://w:8001/?token=x"}, "query"),
            ({"url": ""}, "at least 1 character"),
            ({"url": "http://w:8001", "token": "x"}, "unknown field"),
            ({}, "Field required"),
        ):
            response = client.post("/api/v1/workers", json=body, headers=ADMIN)
            assert response.status_code == 400, response.text
            details = response.json()["error"]["details"]
            assert details[0]["field"] in {"url", "token"} and rule in details[0]["message"], details
        assert client.get("/api/v1/workers", headers=ADMIN).json()["workers"] == []


def test_configured_urls_are_recorded_and_dropped_ones_forgotten(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(workers={"urls": ["http://127.0.0.1:9", "http://127.0.0.1:10/"]}))) as c:
        listed = c.get("/api/v1/workers").json()["workers"]
        assert sorted(w["url"] for w in listed) == ["http://127.0.0.1:10", "http://127.0.0.1:9"]
        assert {w["source"] for w in listed} == {"config"}
        c.post("/api/v1/workers", json={"url": "http://127.0.0.1:11"})
    # Restarted on the same SQLite store with one URL fewer: that one goes, the API-registered one stays.
    with TestClient(create_app(make_settings(workers={"urls": ["http://127.0.0.1:9"]}))) as c:
        listed = c.get("/api/v1/workers").json()["workers"]
        assert sorted(w["url"] for w in listed) == ["http://127.0.0.1:11", "http://127.0.0.1:9"]
