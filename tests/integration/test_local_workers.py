"""A gateway's local workers, through real processes: only the gateway can call them, they get every model
setting the gateway was given, a Hugging Face repo id is a model id end to end, and their probes leave no line
in the gateway's log."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from gateway_procs import Gateway, make_gateway, wait_job, wait_until

pytestmark = pytest.mark.integration

HUB_ID = "org/tiny"


def _hub_cache(root: Path, repo: str, files: Path) -> Path:
    """An offline Hugging Face cache holding ``repo``, laid out as huggingface_hub writes it."""
    revision = "0" * 40
    repo_dir = root / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(revision)
    shutil.copytree(files, repo_dir / "snapshots" / revision)
    return root


@pytest.fixture(scope="module")
def gateway(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("local-workers")
    cache = _hub_cache(root / "hf", HUB_ID, tiny_models / "tiny-sd15")
    config = root / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "inference": {"default_model": HUB_ID},
                "models": {"hub_ids": [HUB_ID], "cache_size": 1},
                "workers": {"probe_interval_s": 0.1},
            }
        )
    )
    gw = make_gateway(
        root / "gw", tiny_models, "--config", str(config), env={"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    )
    gw.start()
    yield gw
    gw.stop()


def _worker_url(gw: Gateway) -> str:
    workers = httpx.get(gw.url + "/api/v1/ready", timeout=10).json()["workers"]
    return str(workers[0]["url"])


def _models(gw: Gateway) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in httpx.get(gw.url + "/api/v1/models", timeout=10).json()["models"]}


def test_a_direct_call_to_the_gateways_local_worker_is_refused(gateway: Gateway) -> None:
    worker = _worker_url(gateway)
    item = {"job_id": "x", "prompt": "p", "seeds": [1]}
    body = {"model": "tiny-sd15", "width": 64, "height": 64, "steps": 2, "items": [item]}
    attack = httpx.post(worker + "/v1/generate", json=body, timeout=30)
    assert attack.status_code == 401
    assert httpx.get(worker + "/v1/models", timeout=30).status_code == 401
    assert httpx.post(worker + "/v1/generate/x/cancel", json={}, timeout=30).status_code == 401


def test_a_hub_id_is_a_model_id_end_to_end(gateway: Gateway) -> None:
    assert {HUB_ID, "tiny-sd15"} <= set(_models(gateway))
    with gateway.client() as client:
        job = client.post("/api/v1/generate", json={"prompt": "a hub model", "width": 64, "height": 64, "steps": 2})
        assert job.status_code == 202, job.text
        done = wait_job(client, job.json()["id"])
    assert done["status"] == "completed", done
    assert done["request"]["model"] == HUB_ID and done["results"][0]["metadata"]["model"] == HUB_ID


def test_the_local_worker_keeps_as_many_pipelines_as_the_gateway_was_told(gateway: Gateway) -> None:
    with gateway.client() as client:
        for model in (HUB_ID, "tiny-sd15"):
            body = {"prompt": "switch", "model": model, "width": 64, "height": 64, "steps": 2}
            assert wait_job(client, client.post("/api/v1/generate", json=body).json()["id"])["status"] == "completed"
    # models.cache_size is 1: switching to tiny-sd15 evicted the hub model (the default would keep both).
    wait_until(lambda: _models(gateway)["tiny-sd15"]["loaded"], gateway.proc, "the probe to see tiny-sd15 loaded")
    assert [m for m, info in _models(gateway).items() if info["loaded"]] == ["tiny-sd15"]


def test_probes_leave_no_line_in_the_gateway_log(gateway: Gateway) -> None:
    worker = _worker_url(gateway)
    httpx.get(worker + "/v1/info", timeout=30)  # refused (no token): a request that is not a probe of ours
    log = gateway.root / "gateway.log"

    def messages() -> list[str]:
        return [json.loads(line)["msg"] for line in log.read_text().splitlines() if line.startswith("{")]

    wait_until(lambda: any('"GET /v1/info HTTP/1.1" 401' in m for m in messages()), gateway.proc, "the 401 line")
    # The gateway probed its worker several times a second while it started, then every 0.1 s.
    assert not [m for m in messages() if "GET /v1/ready HTTP" in m or "GET /v1/health HTTP" in m]
    assert sum(m.startswith("worker ready") for m in messages()) == 1
