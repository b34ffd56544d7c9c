"""Model registry: listing, family detection, stable ids, and the refused formats (decided by content)."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.numpy import save_file
from worker_helpers import call_body, wait_ready

from ablerefusal.protocol import ModelFamily
from ablerefusal.worker.app import create_app
from ablerefusal.worker.engine.detection import UnsupportedModelError, family_from_tensor_names, read_safetensors_header
from ablerefusal.worker.engine.errors import InvalidRequestError
from ablerefusal.worker.engine.registry import ModelRegistry
from ablerefusal.worker.settings import WorkerSettings


class _Booby:
    """Unpickling this writes a file: proof that nobody unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (str(self.marker), "pwned"))  # type: ignore[return-value]


def test_models_lists_all_four_with_family_and_format(worker_client: TestClient) -> None:
    models = {m["id"]: m for m in worker_client.get("/v1/models").json()["models"]}
    assert set(models) == {"tiny-sd15", "tiny-sd15-single", "tiny-sdxl", "tiny-sdxl-single"}
    assert {k: (m["family"], m["format"]) for k, m in models.items()} == {
        "tiny-sd15": ("sd15", "diffusers"),
        "tiny-sd15-single": ("sd15", "single-file"),
        "tiny-sdxl": ("sdxl", "diffusers"),
        "tiny-sdxl-single": ("sdxl", "single-file"),
    }
    assert all(m["demo"] and m["size_bytes"] > 0 for m in models.values())
    assert models["tiny-sdxl"]["default_size"] == 1024 and models["tiny-sd15"]["default_size"] == 512
    assert len(models["tiny-sd15-single"]["sha256"]) == 64


def test_family_from_tensor_names(tiny_sd15_single_file: Path, tiny_sdxl_single_file: Path) -> None:
    assert family_from_tensor_names(read_safetensors_header(tiny_sd15_single_file)) is ModelFamily.sd15
    assert family_from_tensor_names(read_safetensors_header(tiny_sdxl_single_file)) is ModelFamily.sdxl


def test_sd2_and_non_sd_checkpoints_are_refused(tmp_path: Path) -> None:
    sd2 = tmp_path / "sd2.safetensors"
    save_file(
        {
            "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": np.zeros(
                (8, 1024), np.float32
            ),
            "cond_stage_model.model.token_embedding.weight": np.zeros((4, 4), np.float32),
        },
        str(sd2),
    )
    with pytest.raises(UnsupportedModelError, match="SD 2"):
        family_from_tensor_names(read_safetensors_header(sd2))
    lora = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down.alpha": np.zeros((1,), np.float32)}, str(lora))
    with pytest.raises(UnsupportedModelError, match="not a Stable Diffusion checkpoint"):
        family_from_tensor_names(read_safetensors_header(lora))


@pytest.fixture
def hostile_dir(tmp_path: Path, tiny_sd15_single_file: Path) -> tuple[Path, Path]:
    models = tmp_path / "models"
    models.mkdir()
    marker = tmp_path / "unpickled"
    shutil.copy(tiny_sd15_single_file, models / "good.safetensors")
    shutil.copytree(tiny_sd15_single_file.with_suffix(".config"), models / "good.config")
    (models / "evil.ckpt").write_bytes(pickle.dumps(_Booby(marker), protocol=4))
    (models / "renamed.safetensors").write_bytes(pickle.dumps(_Booby(marker), protocol=2))
    torch.save({"state_dict": {"w": torch.zeros(2)}}, str(models / "zipped.safetensors"))
    (models / "legacy.pt").write_bytes(pickle.dumps(_Booby(marker)))
    (models / "garbage.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    outside = tmp_path / "outside.safetensors"
    shutil.copy(tiny_sd15_single_file, outside)
    os.symlink(outside, models / "escape.safetensors")
    return models, marker


def test_refused_files_are_not_offered_and_say_why(hostile_dir: tuple[Path, Path]) -> None:
    models, marker = hostile_dir
    registry = ModelRegistry(models, [], allow_pickle=False)
    assert sorted(registry.scan()) == ["good"]
    refused = registry.refused()
    assert "pickle" in refused["evil"] and "refused" in refused["evil"]
    assert "pickle file with a .safetensors name" in refused["renamed"]
    assert "pickle file with a .safetensors name" in refused["zipped"]
    assert "pickle" in refused["legacy"]
    assert "not a valid safetensors" in refused["garbage"]
    assert "outside the models directory" in refused["escape"]
    assert not marker.exists()


def test_requesting_a_refused_model_is_404_with_the_reason(hostile_dir: tuple[Path, Path]) -> None:
    models, marker = hostile_dir
    with TestClient(create_app(WorkerSettings(models_dir=models, device="cpu"))) as client:
        wait_ready(client)
        assert [m["id"] for m in client.get("/v1/models").json()["models"]] == ["good"]
        for model_id in ("renamed", "evil", "zipped"):
            resp = client.post("/v1/generate", json=call_body(model_id))
            assert resp.status_code == 404
            error = resp.json()["error"]
            assert "pickle" in error["message"] and error["available"] == ["good"]
    assert not marker.exists()


def test_allow_pickle_offers_real_pickles_but_not_garbage(hostile_dir: tuple[Path, Path]) -> None:
    models, marker = hostile_dir
    registry = ModelRegistry(models, [], allow_pickle=True)
    offered = registry.scan()
    assert {"evil", "legacy", "good"} <= set(offered)
    assert offered["evil"].pickle
    # A pickle named .safetensors is still refused: the name promises a safe format.
    assert "renamed" not in offered
    assert not marker.exists()


def test_a_hub_id_is_its_own_model_id() -> None:
    # serve.py makes the default hub repo the default model by its repo id: the worker must accept that id.
    registry = ModelRegistry(Path("/nonexistent"), ["stabilityai/stable-diffusion-xl-base-1.0", "org/sd15-x"], False)
    entries = registry.scan()
    assert set(entries) == {"stabilityai/stable-diffusion-xl-base-1.0", "org/sd15-x"}
    assert entries["stabilityai/stable-diffusion-xl-base-1.0"].family is ModelFamily.sdxl
    assert registry.get("org/sd15-x").format.value == "hub"


@pytest.mark.parametrize("model_id", ["../x", "/etc/passwd", "org/../x", "a/b/c", "org\\x", "org/", "/x"])
def test_ids_that_could_name_a_path_are_refused(model_id: str) -> None:
    registry = ModelRegistry(Path("/nonexistent"), ["org/x"], False)
    registry.scan()
    with pytest.raises(InvalidRequestError) as err:
        registry.get(model_id)
    assert err.value.details[0].field == "model"


def test_a_configured_hub_id_that_is_not_one_is_refused_with_the_reason() -> None:
    registry = ModelRegistry(Path("/nonexistent"), ["../../etc"], False)
    assert registry.scan() == {}
    assert "owner/name" in registry.refused()["../../etc"]


def test_refresh_rescans_only_when_the_models_dir_changed(tmp_path: Path, tiny_sd15_single_file: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    registry = ModelRegistry(models, [], allow_pickle=False)
    assert registry.refresh() == {}
    shutil.copy(tiny_sd15_single_file, models / "later.safetensors")
    assert sorted(registry.refresh()) == ["later"]  # a model copied in is offered without a restart
    first = registry.refresh()["later"]
    assert registry.refresh()["later"] is first  # unchanged directory: the last scan's entry, not a new one
    (models / "later.safetensors").unlink()
    assert registry.refresh() == {}
