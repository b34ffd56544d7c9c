"""A real ``ablerefusal worker`` process on a loopback port, driven over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from ablerefusal.protocol import parse_event
from procs import worker_proc


def test_real_worker_process_serves_and_stops_cleanly(tiny_models_dir: Path, tmp_path: Path) -> None:
    proc = worker_proc(tiny_models_dir, tmp_path / "worker.log", "--worker-id", "proc-1", "--preload", "tiny-sd15")
    with proc.start():
        info = httpx.get(proc.url + "/v1/info").json()
        assert info["worker_id"] == "proc-1" and info["device"] == "cpu"
        assert info["loaded_models"] == ["tiny-sd15"]
        body = {
            "model": "tiny-sd15",
            "width": 64,
            "height": 64,
            "steps": 2,
            "items": [{"job_id": "p", "prompt": "a kite", "seeds": [3, 4]}],
        }
        with httpx.stream("POST", proc.url + "/v1/generate", json=body, timeout=120) as resp:
            assert resp.status_code == 200
            events = [parse_event(line) for line in resp.iter_lines() if line]
        assert [e.type for e in events].count("image") == 2 and events[-1].type == "done"
        bad = httpx.post(proc.url + "/v1/generate", json={**body, "steps": 0})
        assert bad.status_code == 400 and bad.json()["error"]["details"][0]["field"] == "steps"
        assert httpx.get(proc.url + "/v1/health").status_code == 200
        assert proc.stop() == 0
    assert "Application shutdown complete" in proc.log_tail()  # graceful, not killed


def test_bad_device_flag_fails_fast(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ablerefusal", "worker", "--device", "tpu", "--models-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "device" in out.stderr and "auto, cpu, cuda, cuda:N or mps" in out.stderr


def test_models_cli_make_tiny_says_noise_and_list_shows_it(tmp_path: Path) -> None:
    make = subprocess.run(
        [sys.executable, "-m", "ablerefusal", "models", "make-tiny", str(tmp_path), "--family", "sdxl",
         "--format", "single-file"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert "noise" in make.stdout
    assert (tmp_path / "tiny-sdxl-single.safetensors").is_file()
    listed = subprocess.run(
        [sys.executable, "-m", "ablerefusal", "models", "list", "--models-dir", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    (model,) = json.loads(listed.stdout)["models"]
    assert (model["id"], model["family"], model["format"], model["demo"]) == (
        "tiny-sdxl-single",
        "sdxl",
        "single-file",
        True,
    )


def test_probes_leave_no_access_line_and_other_requests_do(tmp_path: Path) -> None:
    # A gateway probes each worker several times a second while it starts; it forwards this log into its own.
    proc = worker_proc(tmp_path, tmp_path / "worker.log")
    with proc.start():
        for _ in range(3):
            for path in ("/v1/health", "/v1/ready", "/v1/info", "/v1/models"):
                assert httpx.get(proc.url + path, timeout=30).status_code == 200
        assert httpx.post(proc.url + "/v1/generate", json={"steps": 0}, timeout=30).status_code == 400
        assert httpx.get(proc.url + "/v1/nowhere", timeout=30).status_code == 404
    log = proc.log_tail(100_000)
    assert '"POST /v1/generate HTTP/1.1" 400' in log and '"GET /v1/nowhere HTTP/1.1" 404' in log
    assert not [line for line in log.splitlines() if "GET /v1/" in line and "/v1/nowhere" not in line]


def test_models_cli_make_tiny_writes_adapters_the_worker_recognises(tmp_path: Path) -> None:
    # What `make-tiny --adapters --controlnet` writes is read back by the worker's own scanners, with the
    # family it was made for; the ControlNet is put in A1111's models/ControlNet/ folder, also scanned.
    from ablerefusal.worker.engine.controlnet.models import ControlNetRegistry
    from ablerefusal.worker.engine.kinds import AdapterKind, AdapterRegistry

    subprocess.run(
        [sys.executable, "-m", "ablerefusal", "models", "make-tiny", str(tmp_path), "--family", "sd15",
         "--adapters", "--controlnet"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    adapters = AdapterRegistry(tmp_path, allow_pickle=False)
    found = {
        kind: sorted(adapters.entries(kind)) for kind in (AdapterKind.lora, AdapterKind.embedding, AdapterKind.vae)
    }
    assert found == {
        AdapterKind.lora: ["tiny-sd15-kohya", "tiny-sd15-locon", "tiny-sd15-peft"],
        AdapterKind.embedding: ["tiny-sd15-embedding"],
        AdapterKind.vae: ["tiny-vae"],
    }
    assert {e.family.value for kind in found for e in adapters.entries(kind).values()} == {"sd15"}
    [made] = list((tmp_path / "controlnet").iterdir())
    a1111 = tmp_path / "models" / "ControlNet"
    a1111.mkdir(parents=True)
    made.rename(a1111 / made.name)
    [(cn_id, entry)] = ControlNetRegistry(tmp_path).scan().items()
    assert cn_id == made.name and entry.family.value == "sd15" and entry.path.parent == a1111
