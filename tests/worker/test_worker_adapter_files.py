"""Adapter files on disk: kinds and families from tensors, the A1111 folder layout, and pickles refused
without ever being unpickled (a pickle whose ``__reduce__`` would create a marker file proves it)."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from worker_helpers import call_body

from ablerefusal.testing.tiny_adapters import make_tiny_embedding, make_tiny_lora, make_tiny_vae
from ablerefusal.worker.app import create_app
from ablerefusal.worker.engine.kinds import AdapterKind, AdapterRegistry
from ablerefusal.worker.engine.registry import ModelRegistry
from ablerefusal.worker.settings import WorkerSettings


class _Bomb:
    """Unpickling this creates ``path``: any code path that unpickles it leaves the file behind."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def _plant(folder: Path, marker: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    payload = pickle.dumps({"lora_unet_x.lora_down.weight": _Bomb(marker)}, protocol=4)
    (folder / "disguised.safetensors").write_bytes(payload)
    (folder / "plain.pt").write_bytes(payload)


@pytest.mark.parametrize("allow_pickle", [False, True])
def test_pickles_are_refused_without_running(tmp_path: Path, allow_pickle: bool) -> None:
    marker = tmp_path / "pwned"
    _plant(tmp_path / "loras", marker)
    _plant(tmp_path / "embeddings", marker)
    registry = AdapterRegistry(tmp_path, allow_pickle=allow_pickle)
    for kind in (AdapterKind.lora, AdapterKind.embedding):
        assert registry.entries(kind) == {}
        refused = registry.refused(kind)
        assert "pickle file with a .safetensors name" in refused["disguised"]
        # Allowed pickles are only read by torch's weights-only unpickler, which refuses the payload.
        assert ("Weights only load failed" in refused["plain"]) if allow_pickle else ("refused" in refused["plain"])
    assert not marker.exists()


def test_a_call_naming_a_disguised_pickle_is_refused(tmp_path: Path, tiny_sd15: Path) -> None:
    marker = tmp_path / "pwned"
    _plant(tmp_path / "loras", marker)
    shutil.copytree(tiny_sd15, tmp_path / "tiny-sd15")
    settings = WorkerSettings(models_dir=tmp_path, device="cpu", worker_id="pickle-test")
    with TestClient(create_app(settings)) as client:
        resp = client.post("/v1/generate", json=call_body("tiny-sd15", loras=[{"name": "disguised", "weight": 1}]))
        assert resp.status_code == 404
        error = resp.json()["error"]
        assert "refused" in error["message"] and "pickle" in error["message"]
        assert error["details"][0]["field"] == "loras"
        assert client.get("/v1/models", params={"kind": "lora"}).json()["models"] == []
    assert not marker.exists()


def test_a1111_layout_is_read(tmp_path: Path, tiny_sd15_single_file: Path) -> None:
    """models_dir pointing at an AUTOMATIC1111 install: models/Stable-diffusion, models/Lora, models/VAE and
    embeddings/ are all listed, under their file names."""
    checkpoints = tmp_path / "models" / "Stable-diffusion"
    checkpoints.mkdir(parents=True)
    shutil.copy(tiny_sd15_single_file, checkpoints / "mine.safetensors")
    shutil.copytree(tiny_sd15_single_file.with_suffix(".config"), checkpoints / "mine.config")
    work = tmp_path / "made"
    shutil.move(make_tiny_lora(work, "sdxl", "peft"), _dir(tmp_path / "models" / "Lora") / "style.safetensors")
    shutil.move(make_tiny_lora(work, "sd15", "kohya"), tmp_path / "models" / "Lora" / "detail.safetensors")
    shutil.move(make_tiny_vae(work), _dir(tmp_path / "models" / "VAE") / "kl-f8.safetensors")
    shutil.move(make_tiny_embedding(work, "sdxl"), _dir(tmp_path / "embeddings") / "negxl.safetensors")
    shutil.rmtree(work)

    assert set(ModelRegistry(tmp_path, [], False).scan()) == {"mine"}
    registry = AdapterRegistry(tmp_path, allow_pickle=False)
    loras = registry.entries(AdapterKind.lora)
    assert {k: (e.family.value, e.name) for k, e in loras.items()} == {
        "style": ("sdxl", "style.safetensors"),
        "detail": ("sd15", "detail.safetensors"),
    }
    assert set(registry.entries(AdapterKind.vae)) == {"kl-f8"}
    assert {k: e.family.value for k, e in registry.entries(AdapterKind.embedding).items()} == {"negxl": "sdxl"}
    # Hashes as A1111 shows them: LoRAs by the kohya hash of their tensor data, VAEs by 10 digits of sha256.
    assert len(loras["style"].short_hash) == 12 and loras["style"].short_hash != loras["style"].sha256[:12]
    assert (
        registry.entries(AdapterKind.vae)["kl-f8"].short_hash == registry.entries(AdapterKind.vae)["kl-f8"].sha256[:10]
    )


def test_not_a_lora_and_links_out_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    lora = make_tiny_lora(outside, "sd15")
    models = tmp_path / "models-dir"
    (models / "loras").mkdir(parents=True)
    (models / "loras" / "linked.safetensors").symlink_to(lora)
    shutil.copy(make_tiny_vae(outside), models / "loras" / "a-vae.safetensors")
    refused = AdapterRegistry(models, allow_pickle=False).refused(AdapterKind.lora)
    assert refused["linked"] == "links outside the models directory"
    assert "not a LoRA" in refused["a-vae"]


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.parametrize(("marker", "kind"), [("hada_w1_a", "LoHa"), ("lokr_w1", "LoKr"), ("oft_blocks", "OFT")])
def test_lycoris_kinds_diffusers_cannot_load_are_refused_by_name(tmp_path: Path, marker: str, kind: str) -> None:
    import torch
    from safetensors.torch import save_file

    folder = _dir(tmp_path / "loras")
    key = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    save_file(
        {f"{key}.{marker}": torch.zeros(4, 8), f"{key}.alpha": torch.tensor(4.0)}, str(folder / "lyco.safetensors")
    )
    registry = AdapterRegistry(tmp_path, allow_pickle=False)
    assert registry.entries(AdapterKind.lora) == {}
    assert registry.refused(AdapterKind.lora)["lyco"] == f"a LyCORIS {kind} file; diffusers loads LoRA and LoCon only"
