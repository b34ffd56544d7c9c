"""API keys on /api/v1 and /outputs, the bind-safety rule, and CORS (off unless configured)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from ablerefusal.gateway.app import create_app
from ablerefusal.gateway.auth import check_bind_safety
from ablerefusal.gateway.settings import Settings

GOOD = {"prompt": "a red cube", "width": 64, "height": 64, "steps": 1}


def test_api_keys_guard_api_and_outputs(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(auth={"api_keys": ["k1", "k2"]})
    with TestClient(create_app(settings)) as client:
        for path in ["/api/v1/queue", "/api/v1/models", "/api/v1/generate", "/outputs/x/0.png"]:
            resp = client.get(path)
            assert resp.status_code == 401, path
            assert resp.headers["WWW-Authenticate"] == "Bearer"
            assert resp.json()["error"]["code"] == "unauthorized"
        assert client.get("/api/v1/queue", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/v1/queue", headers={"Authorization": "Basic azE6"}).status_code == 401
        submit = client.post("/api/v1/generate", json=GOOD)
        assert submit.status_code == 401
        assert client.get("/api/v1/queue", headers={"Authorization": "Bearer k2"}).json()["counts"]["queued"] == 0
        ok = client.post("/api/v1/generate", json=GOOD, headers={"Authorization": "Bearer k1"})
        assert ok.status_code == 202
        # Probes carry no credentials.
        assert client.get("/api/v1/health").status_code == 200


def test_no_keys_means_open_api(client: TestClient) -> None:
    assert client.get("/api/v1/queue").status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::"])
def test_refuses_network_bind_without_keys(host: str) -> None:
    with pytest.raises(SystemExit, match="--insecure"):
        check_bind_safety(host, [], insecure=False)
    check_bind_safety(host, ["key"], insecure=False)
    check_bind_safety(host, [], insecure=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_bind_needs_no_keys(host: str) -> None:
    check_bind_safety(host, [], insecure=False)


def test_cors_off_by_default(client: TestClient) -> None:
    resp = client.get("/api/v1/health", headers={"Origin": "https://example.com"})
    assert "access-control-allow-origin" not in resp.headers
    pre = client.options(
        "/api/v1/generate",
        headers={"Origin": "https://example.com", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in pre.headers


def test_cors_allows_configured_origins_only(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        server={"enable_cors": True, "cors_origins": ["https://ui.example"], "cors_allow_credentials": True}
    )
    with TestClient(create_app(settings)) as client:
        pre = client.options(
            "/api/v1/generate",
            headers={
                "Origin": "https://ui.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Idempotency-Key",
            },
        )
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "https://ui.example"
        assert pre.headers["access-control-allow-credentials"] == "true"
        assert "idempotency-key" in pre.headers["access-control-allow-headers"].lower()
        other = client.get("/api/v1/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
