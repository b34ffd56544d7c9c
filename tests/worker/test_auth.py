"""A worker with a token refuses calls without it; a worker never listens on the network without one unless told
to. (Issue 16, finding 6: anyone who could reach a worker could run calls on its GPU.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from worker_helpers import call_body

from ablerefusal.worker.app import create_app
from ablerefusal.worker.settings import WorkerSettings, bind_refusal

TOKEN = "worker-token-1"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    models = tmp_path_factory.mktemp("no-models")
    return TestClient(create_app(WorkerSettings(models_dir=models, device="cpu", token=TOKEN)))


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}],
)
def test_every_call_without_the_token_is_refused(guarded: TestClient, headers: dict[str, str]) -> None:
    for method, path, body in [
        ("POST", "/v1/generate", call_body()),
        ("POST", "/v1/generate/some-call/cancel", {}),
        ("GET", "/v1/info", None),
        ("GET", "/v1/models", None),
        ("GET", "/v1/ready", None),
    ]:
        response = guarded.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["details"][0]["field"] == "authorization"


def test_the_token_opens_the_worker_and_health_needs_none(guarded: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert guarded.get("/v1/models", headers=auth).status_code == 200
    assert guarded.get("/v1/info", headers=auth).json()["protocol_version"]
    assert guarded.get("/v1/health").status_code == 200  # liveness reveals nothing and must work for probes


def test_bind_rules() -> None:
    assert bind_refusal(WorkerSettings(host="127.0.0.1")) is None
    assert bind_refusal(WorkerSettings(host="::1")) is None
    assert bind_refusal(WorkerSettings(host="0.0.0.0", token=TOKEN)) is None
    assert bind_refusal(WorkerSettings(host="0.0.0.0", insecure=True)) is None
    refusal = bind_refusal(WorkerSettings(host="10.0.0.5"))
    assert refusal is not None and "--token" in refusal and "--insecure" in refusal
    with pytest.raises(ValidationError, match="blank"):
        WorkerSettings(token="  ")


@pytest.mark.parametrize("extra", [[], ["--token", ""]])
def test_a_network_bind_without_a_token_does_not_start(tmp_path: Path, extra: list[str]) -> None:
    args = [sys.executable, "-m", "ablerefusal", "worker", "--host", "0.0.0.0", "--port", "0"]
    result = subprocess.run([*args, "--models-dir", str(tmp_path), *extra], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert ("without a token" if not extra else "blank") in result.stderr
