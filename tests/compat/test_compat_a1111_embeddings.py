"""Textual-inversion figures from the file to A1111's ``/sdapi/v1/embeddings``: the worker's embedding listing
carries vectors, width and the training record (read from the safetensors header and metadata, or from an
allowed ``.pt`` through torch's weights-only unpickler), counted as A1111's ``EmbeddingDatabase.load_from_file``
does; the gateway answers A1111's ``EmbeddingItem`` with them over real HTTP, loaded or skipped by the current
checkpoint's family.

Expected figures are read back from the files' tensors here, never from the code under test.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from compat_live import API_KEY, gateway_proc, wait_for_models
from fastapi.testclient import TestClient
from safetensors import safe_open

from ablerefusal.testing.tiny_adapters import make_tiny_embedding
from ablerefusal.worker.app import create_app
from ablerefusal.worker.settings import WorkerSettings

# What A1111's trainer writes (textual_inversion.py Embedding.save), with a real SD 1.5 vector width.
A1111_RECORD: dict[str, Any] = {"step": 1500, "sd_checkpoint": "a9263745", "sd_checkpoint_name": "v1-5-pruned-emaonly"}


def tensor_shapes(path: Path) -> dict[str, list[int]]:
    with safe_open(str(path), framework="pt") as fh:
        return {key: list(fh.get_slice(key).get_shape()) for key in fh.keys()}  # noqa: SIM118 (not a dict)


def expected_figures(path: Path) -> dict[str, int]:
    """A1111's counting, from the tensors themselves: SDXL adds clip_l's and clip_g's widths."""
    shapes = tensor_shapes(path)
    if "clip_g" in shapes:
        return {"vectors": shapes["clip_g"][0], "shape": shapes["clip_l"][1] + shapes["clip_g"][1]}
    (shape,) = shapes.values()
    return {"vectors": shape[0], "shape": shape[1]}


def save_a1111_pt(path: Path, vectors: int, width: int) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    vec = torch.randn(vectors, width, generator=torch.Generator().manual_seed(3))
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vec}, "name": path.stem, **A1111_RECORD}, path)


def save_safetensors(path: Path, state: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata)


@pytest.fixture(scope="module")
def embedding_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny embeddings of both families (three vectors for SDXL, so the count is read, not assumed)."""
    import torch

    models = tmp_path_factory.mktemp("embedding-files")
    make_tiny_embedding(models, "sd15", name="tiny-emb")
    make_tiny_embedding(models, "sdxl", name="tiny-emb-xl", vectors=3)
    save_a1111_pt(models / "embeddings" / "trained.pt", vectors=4, width=768)
    # A diffusers concept (one token, one-dimensional) whose metadata carries the record, as strings.
    concept = {"<cat-toy>": torch.randn(768, generator=torch.Generator().manual_seed(5))}
    save_safetensors(models / "embeddings" / "cat-toy.safetensors", concept, {"step": "500", "sd_checkpoint": "x1"})
    # A record of the wrong types is unknown, not guessed.
    bad = {"emb_params": torch.zeros(2, 768)}
    save_safetensors(models / "embeddings" / "odd-record.safetensors", bad, {"step": "many", "sd_checkpoint": ""})
    return models


def worker_listing(models_dir: Path, allow_pickle: bool) -> dict[str, dict[str, Any]]:
    settings = WorkerSettings(models_dir=models_dir, device="cpu", worker_id="emb-test", allow_pickle=allow_pickle)
    with TestClient(create_app(settings)) as client:
        resp = client.get("/v1/models", params={"kind": "embedding"})
        assert resp.status_code == 200, resp.text
        return {m["id"]: m for m in resp.json()["models"]}


def test_worker_listing_carries_the_figures_of_both_families(embedding_files: Path) -> None:
    listed = worker_listing(embedding_files, allow_pickle=True)
    emb = embedding_files / "embeddings"
    sd15, sdxl = listed["tiny-emb"], listed["tiny-emb-xl"]
    assert (sd15["family"], sdxl["family"]) == ("sd15", "sdxl")
    no_record = {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None}
    assert sd15["embedding"] == {**expected_figures(emb / "tiny-emb.safetensors"), **no_record}
    assert sdxl["embedding"] == {**expected_figures(emb / "tiny-emb-xl.safetensors"), **no_record}
    assert (sd15["embedding"]["vectors"], sdxl["embedding"]["vectors"]) == (2, 3)
    # A1111's .pt: string_to_param's vectors and the trainer's record beside them.
    assert listed["trained"]["embedding"] == {"vectors": 4, "shape": 768, **A1111_RECORD}
    # A one-dimensional diffusers concept is one vector; the metadata's record is read, typed.
    assert listed["cat-toy"]["embedding"] == {
        "vectors": 1, "shape": 768, "step": 500, "sd_checkpoint": "x1", "sd_checkpoint_name": None,
    }  # fmt: skip
    assert listed["odd-record"]["embedding"] == {"vectors": 2, "shape": 768, **no_record}


def test_pt_embedding_needs_pickle_allowed(embedding_files: Path) -> None:
    listed = worker_listing(embedding_files, allow_pickle=False)
    assert "trained" not in listed and {"tiny-emb", "tiny-emb-xl", "cat-toy"} <= set(listed)


# ---- the A1111 endpoint over real HTTP ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory, tiny_sd15: Path, tiny_sdxl: Path) -> Iterator[str]:
    """A real gateway process with one CPU worker; tiny SD 1.5 and SDXL checkpoints and tiny embeddings."""
    root = tmp_path_factory.mktemp("a1111-embeddings")
    models = root / "models"
    shutil.copytree(tiny_sd15, models / "tiny-sd15")
    shutil.copytree(tiny_sdxl, models / "tiny-sdxl")
    make_tiny_embedding(models, "sd15", name="tiny-emb")
    make_tiny_embedding(models, "sdxl", name="tiny-emb-xl", vectors=3)
    with gateway_proc(root, models).start(timeout=180) as proc:
        wait_for_models(proc, {"tiny-sd15", "tiny-sdxl"}, timeout_s=180)
        yield proc.url


def a1111_embeddings(http: httpx.Client) -> dict[str, dict[str, dict[str, Any]]]:
    resp = http.get("/sdapi/v1/embeddings")
    assert resp.status_code == 200, resp.text
    body: dict[str, dict[str, dict[str, Any]]] = resp.json()
    return body


def test_a1111_embeddings_answer_ints_and_follow_the_checkpoint(gateway_url: str) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=gateway_url, headers=headers, timeout=60) as http:
        http.post("/sdapi/v1/options", json={"sd_model_checkpoint": "tiny-sd15"}).raise_for_status()
        first = a1111_embeddings(http)
        assert set(first["loaded"]) == {"tiny-emb"} and set(first["skipped"]) == {"tiny-emb-xl"}
        item, item_xl = first["loaded"]["tiny-emb"], first["skipped"]["tiny-emb-xl"]
        # A1111's EmbeddingItem: exactly these keys, shape and vectors ints.
        assert set(item) == {"step", "sd_checkpoint", "sd_checkpoint_name", "shape", "vectors"}
        assert all(type(i[k]) is int for i in (item, item_xl) for k in ("shape", "vectors"))
        assert (item["vectors"], item_xl["vectors"]) == (2, 3)
        # The same figures as the gateway's own listing.
        listed = {m["id"]: m for m in http.get("/api/v1/models", params={"kind": "embedding"}).json()["models"]}
        assert item == listed["tiny-emb"]["embedding"] and item_xl == listed["tiny-emb-xl"]["embedding"]
        # Another family's checkpoint: loaded and skipped swap, the figures stay.
        http.post("/sdapi/v1/options", json={"sd_model_checkpoint": "tiny-sdxl"}).raise_for_status()
        second = a1111_embeddings(http)
        assert second == {"loaded": {"tiny-emb-xl": item_xl}, "skipped": {"tiny-emb": item}}


def test_vectors_of_another_rank_are_refused_with_the_reason(tmp_path: Path) -> None:
    import torch

    from ablerefusal.worker.engine.kinds import AdapterKind, AdapterRegistry

    state = {"clip_l": torch.zeros(1, 2, 768), "clip_g": torch.zeros(1, 2, 1280)}
    save_safetensors(tmp_path / "embeddings" / "cube.safetensors", state)
    registry = AdapterRegistry(tmp_path, allow_pickle=False)
    assert registry.entries(AdapterKind.embedding) == {}
    assert "1- or 2-dimensional" in registry.refused(AdapterKind.embedding)["cube"]
