"""Finding 7: with no keys set, a ``text/plain`` POST from any web page (no preflight needed) reached
``/sdapi/v1/interrupt`` and stopped the running request. State-changing requests now need a body type our
routes read, and an ``Origin``, when present, that is the gateway's own or listed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from security_util import app_client

GOOD = {"prompt": "a red cube", "width": 64, "height": 64, "steps": 1}
OWN_ORIGIN = "http://testserver"  # TestClient's Host is "testserver"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    server = {"allowed_origins": ["https://studio.example"], "public_url": "https://sd.example.org/"}
    with app_client(tmp_path, server=server) as c:
        yield c


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "text/plain; charset=utf-8"]
)
def test_simple_cross_site_bodies_are_refused(client: TestClient, content_type: str) -> None:
    # The attack as a page sends it: no preflight, no Origin check by the browser.
    resp = client.post("/sdapi/v1/interrupt", content=b"x", headers={"Content-Type": content_type})
    assert resp.status_code == 415
    assert "Content-Type" in resp.json()["detail"] and "application/json" in resp.json()["detail"]
    api = client.post("/api/v1/generate", content=b'{"prompt": "x"}', headers={"Content-Type": content_type})
    assert api.status_code == 415
    assert api.json()["error"]["details"] == [
        {"field": "Content-Type", "message": "must be application/json or multipart/form-data"}
    ]
    assert client.get("/api/v1/queue").json()["counts"]["queued"] == 0


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://testserver.evil.example", "not a url"])
def test_foreign_origins_may_not_act(client: TestClient, origin: str) -> None:
    headers = {"Origin": origin}
    interrupt = client.post("/sdapi/v1/interrupt", headers=headers)
    assert interrupt.status_code == 403 and "Origin" in interrupt.json()["detail"]
    submit = client.post("/api/v1/generate", json=GOOD, headers=headers)
    assert submit.status_code == 403
    assert submit.json()["error"]["details"] == [{"field": "Origin", "message": "must be an allowed origin"}]
    openai = client.post("/v1/images/generations", json={"prompt": "x"}, headers=headers)
    assert openai.status_code == 403 and openai.json()["error"]["code"] == "forbidden_origin"
    assert client.get("/api/v1/queue").json()["counts"]["queued"] == 0


@pytest.mark.parametrize(
    "origin", [OWN_ORIGIN, "https://studio.example", "https://sd.example.org", "HTTPS://Studio.Example:443"]
)
def test_own_and_listed_origins_may_act(client: TestClient, origin: str) -> None:
    resp = client.post("/api/v1/generate", json=GOOD, headers={"Origin": origin})
    assert resp.status_code == 202
    assert client.post("/sdapi/v1/interrupt", headers={"Origin": origin}).status_code == 200


def test_clients_without_origin_keep_working(client: TestClient) -> None:
    # Scripts, curl, A1111 and OpenAI SDKs send no Origin, and bodiless POSTs no Content-Type.
    assert client.post("/sdapi/v1/interrupt").status_code == 200
    assert (
        client.post(
            "/api/v1/generate", json=GOOD, headers={"Content-Type": "application/json; charset=utf-8"}
        ).status_code
        == 202
    )


def test_reads_are_left_to_cors(client: TestClient) -> None:
    # A cross-site GET changes nothing, and the browser keeps its answer from the page unless CORS allows.
    assert client.get("/api/v1/queue", headers={"Origin": "https://evil.example"}).status_code == 200
