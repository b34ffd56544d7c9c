"""Issue 10 defect 6 and finding 11's compat shapes: an oversize body is a 413 whether it announces its
length or streams chunked (before, a chunked one got FastAPI's 400 "error parsing the body"); oversize and
too-deeply-nested bodies on the compat APIs answer in the A1111 / OpenAI shape, not ``/api/v1``'s."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from security_util import app_client

LIMIT = 4096
OVERSIZE = b'{"prompt": "' + b"a" * (2 * LIMIT) + b'"}'
DEEP = b"[" * 2000 + b"]" * 2000  # within LIMIT: only the depth is wrong


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with app_client(tmp_path, server={"max_body_bytes": LIMIT}) as c:
        yield c


def _chunked(data: bytes) -> Iterator[bytes]:
    # A generator body: httpx sends it with Transfer-Encoding: chunked and no Content-Length.
    for start in range(0, len(data), 1000):
        yield data[start : start + 1000]


def _post(client: TestClient, path: str, body: bytes, chunked: bool) -> httpx.Response:
    content: Any = _chunked(body) if chunked else body
    resp = client.post(path, content=content, headers={"Content-Type": "application/json"})
    assert ("content-length" not in resp.request.headers) is chunked
    return resp


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversize_body_is_413_in_each_apis_shape(client: TestClient, chunked: bool) -> None:
    api = _post(client, "/api/v1/generate", OVERSIZE, chunked)
    assert api.status_code == 413
    assert api.json()["error"]["code"] == "payload_too_large"
    assert api.json()["error"]["details"] == [{"field": "body", "message": f"must be at most {LIMIT} bytes"}]

    a1111 = _post(client, "/sdapi/v1/txt2img", OVERSIZE, chunked)
    assert a1111.status_code == 413
    assert a1111.json()["error"] == "payload_too_large" and f"({LIMIT} bytes)" in a1111.json()["detail"]

    openai = _post(client, "/v1/images/generations", OVERSIZE, chunked)
    assert openai.status_code == 413
    assert openai.json()["error"]["code"] == "payload_too_large"
    assert openai.json()["error"]["type"] == "invalid_request_error"
    assert client.get("/api/v1/queue").json()["counts"]["queued"] == 0


def test_body_at_the_limit_is_read(client: TestClient) -> None:
    start = b'{"prompt": "a red cube"'
    body = start + b" " * (LIMIT - len(start) - 1) + b"}"
    assert len(body) == LIMIT
    resp = _post(client, "/api/v1/generate", body, chunked=True)
    assert resp.status_code == 202


def test_deeply_nested_body_names_the_rule_in_each_apis_shape(client: TestClient) -> None:
    api = _post(client, "/api/v1/generate", DEEP, chunked=False)
    assert api.status_code == 400
    assert api.json()["error"]["details"] == [{"field": "body", "message": "JSON nested too deeply"}]

    a1111 = _post(client, "/sdapi/v1/txt2img", DEEP, chunked=False)
    assert a1111.status_code == 400 and "nested too deeply" in a1111.json()["detail"]
    assert set(a1111.json()) == {"error", "detail", "body", "errors"}

    openai = _post(client, "/v1/images/generations", DEEP, chunked=False)
    assert openai.status_code == 400 and "nested too deeply" in openai.json()["error"]["message"]
    assert openai.json()["error"]["type"] == "invalid_request_error"
