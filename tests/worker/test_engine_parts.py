"""Engine parts tested directly: LDM export round trip, pipeline cache, settings, compiled mode wiring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from pydantic import ValidationError
from worker_helpers import call_body, images, pixels, run_call, wait_ready

from ablerefusal.testing.ldm import pipeline_to_ldm
from ablerefusal.testing.tiny import build_tiny_pipeline
from ablerefusal.worker.app import create_app
from ablerefusal.worker.service import WorkerService
from ablerefusal.worker.settings import WorkerSettings, load_worker_settings


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_ldm_export_is_the_inverse_of_diffusers_conversion(family: str) -> None:
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        convert_open_clip_checkpoint,
    )

    pipe = build_tiny_pipeline(family, seed=3)
    ldm = pipeline_to_ldm(pipe)
    unet = convert_ldm_unet_checkpoint(ldm, dict(pipe.unet.config))
    assert unet.keys() == pipe.unet.state_dict().keys()
    assert all(torch.equal(v, pipe.unet.state_dict()[k]) for k, v in unet.items())
    vae = convert_ldm_vae_checkpoint(ldm, dict(pipe.vae.config))
    assert all(torch.equal(v.reshape(pipe.vae.state_dict()[k].shape), pipe.vae.state_dict()[k]) for k, v in vae.items())
    assert vae.keys() == pipe.vae.state_dict().keys()
    if family == "sdxl":
        clip2 = convert_open_clip_checkpoint(pipe.text_encoder_2, ldm, prefix="conditioner.embedders.1.model.")
        reference = pipe.text_encoder_2.state_dict()
        assert all(torch.equal(v, reference[k]) for k, v in clip2.items())
        assert set(clip2) == {k for k in reference if not k.endswith("position_ids")}


def test_switching_back_to_a_cached_model_does_not_reload(tiny_models_dir: Path) -> None:
    app = create_app(WorkerSettings(models_dir=tiny_models_dir, device="cpu", cache_size=2))
    with TestClient(app) as client:
        wait_ready(client)
        service: WorkerService = app.state.service
        for model in ("tiny-sd15", "tiny-sdxl", "tiny-sd15", "tiny-sdxl"):
            assert run_call(client, call_body(model))[-1].type == "done"
        assert service.cache.loads == 2
        assert sorted(client.get("/v1/info").json()["loaded_models"]) == ["tiny-sd15", "tiny-sdxl"]
        # A third model evicts the least recently used one (tiny-sd15).
        run_call(client, call_body("tiny-sd15-single"))
        assert service.cache.loaded_ids() == ["tiny-sdxl", "tiny-sd15-single"]
        loaded = {m["id"] for m in client.get("/v1/models").json()["models"] if m["loaded"]}
        assert loaded == {"tiny-sdxl", "tiny-sd15-single"}


def test_compiled_mode_is_eager_until_warm_then_same_pixels(tiny_models_dir: Path) -> None:
    from ablerefusal.worker.engine.compiled import CompiledUnets

    settings = WorkerSettings(
        models_dir=tiny_models_dir,
        device="cpu",
        compile=True,
        compile_backend="eager",  # traces with dynamo without codegen: the wiring, not the speed, on CPU
        compile_shapes=["tiny-sd15:64x64:b1"],
    )
    app = create_app(settings)
    with TestClient(app) as client:
        wait_ready(client)
        service: WorkerService = app.state.service
        compiler: CompiledUnets = service.compiler
        assert compiler is not None
        compiler.join(300)
        assert client.get("/v1/info").json()["compiled_shapes"] == ["tiny-sd15:64x64:b1"]
        warm_call = call_body("tiny-sd15")
        from ablerefusal.protocol import GenerateCall

        assert compiler.unet_for("tiny-sd15", GenerateCall.model_validate(warm_call)) is not None
        cold = GenerateCall.model_validate(call_body("tiny-sd15", width=128))
        assert compiler.unet_for("tiny-sd15", cold) is None  # not a warm shape: eager
        compiled_px = pixels(images(run_call(client, warm_call))[("job-1", 0)])
    with TestClient(create_app(WorkerSettings(models_dir=tiny_models_dir, device="cpu"))) as eager_client:
        wait_ready(eager_client)
        eager_px = pixels(images(run_call(eager_client, warm_call))[("job-1", 0)])
    assert np.array_equal(compiled_px, eager_px)


def test_settings_yaml_env_and_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    worker_yaml = tmp_path / "worker.yaml"
    worker_yaml.write_text("worker:\n  device: cpu\n  cache_size: 3\n  models_dir: /srv/models\n")
    assert load_worker_settings(worker_yaml).cache_size == 3
    gateway_yaml = tmp_path / "config.yaml"
    gateway_yaml.write_text(
        "inference:\n  device: cuda:1\nstorage:\n  models_dir: /data/m\n"
        "models:\n  allow_pickle: true\n  cache_size: 5\n"
    )
    s = load_worker_settings(gateway_yaml)
    assert (s.device, s.models_dir, s.allow_pickle, s.cache_size) == ("cuda:1", Path("/data/m"), True, 5)
    monkeypatch.setenv("ABLEREFUSAL_WORKER_CACHE_SIZE", "7")
    assert load_worker_settings(gateway_yaml).cache_size == 7
    assert load_worker_settings(gateway_yaml, {"cache_size": 1}).cache_size == 1
    with pytest.raises(ValidationError, match="device"):
        WorkerSettings(device="gpu")
    with pytest.raises(ValidationError, match="model:WxH:bN"):
        WorkerSettings(compile_shapes=["sd15-512"])


def test_cuda_without_a_gpu_falls_back_only_when_allowed(tiny_models_dir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the fallback path needs a machine without it")
    allowed = create_app(WorkerSettings(models_dir=tiny_models_dir, device="cuda", allow_cpu_fallback=True))
    with TestClient(allowed) as client:
        wait_ready(client)
        info = client.get("/v1/info").json()
        assert info["device"] == "cpu" and "CUDA is not available" in info["fallback_reason"]
    refused = create_app(WorkerSettings(models_dir=tiny_models_dir, device="cuda"))
    with TestClient(refused) as client:
        service: WorkerService = refused.state.service
        service._gpu.submit(lambda: None).result()  # initialisation has run
        ready = client.get("/v1/ready")
        assert ready.status_code == 503 and "CUDA is not available" in ready.json()["reason"]
        resp = client.post("/v1/generate", json=call_body())
        assert resp.status_code == 503 and resp.json()["error"]["retryable"] is True


def test_per_call_memory_options_are_applied(worker_client: TestClient, worker_service: WorkerService) -> None:
    body = call_body(memory={"attention_slicing": True, "vae_tiling": True})
    assert run_call(worker_client, body)[-1].type == "done"
    resident = worker_service.cache.peek("tiny-sd15")
    assert resident.flags == {"attention_slicing": True, "vae_tiling": True}
    assert run_call(worker_client, call_body())[-1].type == "done"  # back to the defaults
    assert resident.flags == {"attention_slicing": False, "vae_tiling": False}
