"""Loading a single-file checkpoint with the bundled configs: the missing tokenizer comes from the HF cache as a
loaded component, and nothing is left on disk (there used to be one temporary folder per load)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import huggingface_hub.constants
import pytest

from ablerefusal.worker.engine import loading
from ablerefusal.worker.engine.devices import resolve_device
from ablerefusal.worker.engine.errors import ModelLoadError
from ablerefusal.worker.engine.registry import ModelRegistry


@pytest.fixture
def bundled_without_tokenizer(tmp_path: Path, tiny_sd15_single_file: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Bundled configs for the tiny family, lacking the tokenizer files as the real bundled ones do; the tiny
    checkpoint's shapes are not the full-size ones, so the real bundled configs cannot load it."""
    sidecar = tiny_sd15_single_file.with_suffix(".config")
    bundled = tmp_path / "configs"
    shutil.copytree(sidecar, bundled / "sd15")
    for name in ("tokenizer.json", "vocab.json", "merges.txt"):
        (bundled / "sd15" / "tokenizer" / name).unlink(missing_ok=True)
    monkeypatch.setattr(loading, "BUNDLED_CONFIGS", bundled)
    return sidecar / "tokenizer"


def _hf_cache_with(tmp_path: Path, repo: str, files: Path) -> Path:
    """An HF hub cache holding ``repo``'s files, laid out as huggingface_hub writes it."""
    cache = tmp_path / "hub"
    repo_dir = cache / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text("0" * 40)
    shutil.copytree(files, repo_dir / "snapshots" / ("0" * 40))
    return cache


def test_single_file_with_bundled_configs_loads_and_leaves_no_folder_behind(
    tmp_path: Path, tiny_sd15_single_file: Path, bundled_without_tokenizer: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = _hf_cache_with(tmp_path, "openai/clip-vit-large-patch14", bundled_without_tokenizer)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where any temporary folder would appear
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(tiny_sd15_single_file, models / "plain.safetensors")  # no sidecar: the bundled configs are used
    entry = ModelRegistry(models, [], allow_pickle=False).get("plain")
    assert entry.config_dir is None

    device = resolve_device("cpu")
    for _ in range(2):
        pipe = loading.load_pipeline(entry, device, allow_pickle=False)
        assert pipe.tokenizer("a cat").input_ids[0] == pipe.tokenizer.bos_token_id
    # torch keeps one compile cache there per user, whatever is loaded; anything else would be ours.
    assert [p.name for p in scratch.iterdir() if not p.name.startswith("torchinductor_")] == []


def test_single_file_without_any_tokenizer_says_which_files_are_missing(
    tmp_path: Path, tiny_sd15_single_file: Path, bundled_without_tokenizer: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(tiny_sd15_single_file, models / "plain.safetensors")
    entry = ModelRegistry(models, [], allow_pickle=False).get("plain")
    with pytest.raises(ModelLoadError, match=r"tokenizer \(openai/clip-vit-large-patch14\)"):
        loading.load_pipeline(entry, resolve_device("cpu"), allow_pickle=False)
