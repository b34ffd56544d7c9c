"""Loading a registry entry into a diffusers pipeline on the worker's device.

- diffusers folders: ``from_pretrained`` (safetensors only unless pickles are allowed).
- single files: the family's pipeline class ``from_single_file`` with a local diffusers config folder: the
  checkpoint's sidecar ``<stem>.config/`` if present (needed whenever the shapes are not the full-size ones),
  else the bundled full-size configs in ``ablerefusal/worker/configs/<family>`` plus CLIP tokenizers from that
  folder or the Hugging Face cache, passed as loaded components. Nothing is fetched from the network for single
  files, and nothing is written to disk.
- hub ids: ``from_pretrained`` into the HF cache; offline, a clear error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablerefusal.protocol import ModelFamily, ModelFormat
from ablerefusal.worker.engine.determinism import make_batch_invariant
from ablerefusal.worker.engine.devices import DeviceInfo
from ablerefusal.worker.engine.errors import ModelLoadError
from ablerefusal.worker.engine.quantize import quantize_pipeline
from ablerefusal.worker.engine.registry import ModelEntry
from ablerefusal.worker.engine.safetensors_reads import read_safetensors_by_pread

BUNDLED_CONFIGS = Path(__file__).resolve().parent.parent / "configs"
# Where the tokenizers of the full-size families live on the hub (used only if already in the HF cache).
_TOKENIZER_REPOS = {
    "tokenizer": "openai/clip-vit-large-patch14",
    "tokenizer_2": "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k",
}


def pipeline_class(family: ModelFamily) -> Any:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    return StableDiffusionXLPipeline if family is ModelFamily.sdxl else StableDiffusionPipeline


def _has_tokenizer_files(folder: Path) -> bool:
    return (folder / "tokenizer.json").is_file() or (
        (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    )


def _cached_tokenizer(repo: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for filename in ("vocab.json", "tokenizer.json"):
        hit = try_to_load_from_cache(repo, filename)
        if isinstance(hit, str):
            return Path(hit).parent
    return None


def single_file_sources(family: ModelFamily) -> tuple[Path, dict[str, Any]]:
    """Where a full-size single file's configs come from: the bundled config folder, plus each CLIP tokenizer
    that folder lacks, loaded from the HF cache and handed to ``from_single_file`` as a component (nothing is
    copied to disk). Raises ModelLoadError naming the missing files when a tokenizer is nowhere."""
    source = BUNDLED_CONFIGS / family.value
    names = ["tokenizer", "tokenizer_2"] if family is ModelFamily.sdxl else ["tokenizer"]
    missing = [n for n in names if not _has_tokenizer_files(source / n)]
    found = {n: _cached_tokenizer(_TOKENIZER_REPOS[n]) for n in missing}
    absent = [n for n, path in found.items() if path is None]
    if absent:
        raise ModelLoadError(
            "single-file checkpoint needs CLIP tokenizer files (vocab.json + merges.txt) that are neither bundled "
            f"nor in the Hugging Face cache: {', '.join(f'{n} ({_TOKENIZER_REPOS[n]})' for n in absent)}. "
            f"Copy them into {source}/<tokenizer>/, put a full diffusers config folder next to the checkpoint "
            "as <name>.config/, or run once with internet access"
        )
    from transformers import CLIPTokenizer

    return source, {name: CLIPTokenizer.from_pretrained(str(path)) for name, path in found.items()}


def load_pipeline(
    entry: ModelEntry, device: DeviceInfo, allow_pickle: bool, quantize: str = "none", fuse_qkv: bool = False
) -> Any:
    """Load ``entry``, move it to the device and quantize it (``quantize.py``; ``fuse_qkv`` fuses the UNet's
    projections first, as compiled mode on CUDA wants); every load failure is a ModelLoadError with the reason."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()  # per-component bars would flood the worker's log
    # Before the first read: safetensors' default reads leak two ints per tensor (safetensors_reads.py). LoRAs,
    # VAEs, ControlNets and embeddings are read only once a pipeline is loaded, so this covers them too.
    read_safetensors_by_pread()
    cls = pipeline_class(entry.family)
    extra: dict[str, Any] = {}
    if entry.family is ModelFamily.sd15:
        extra = {"safety_checker": None, "requires_safety_checker": False}
    try:
        if entry.format is ModelFormat.diffusers:
            assert entry.path is not None
            pipe = cls.from_pretrained(
                entry.path, torch_dtype=device.dtype, local_files_only=True, use_safetensors=not allow_pickle, **extra
            )
        elif entry.format is ModelFormat.single_file:
            assert entry.path is not None
            if entry.pickle and not allow_pickle:
                raise ModelLoadError(f"{entry.name}: pickle checkpoints are refused")
            config, components = (entry.config_dir, {}) if entry.config_dir else single_file_sources(entry.family)
            pipe = cls.from_single_file(
                str(entry.path),
                config=str(config),
                torch_dtype=device.dtype,
                local_files_only=True,
                **components,
                **extra,
            )
        else:
            pipe = _load_hub(cls, entry, device, extra)
    except ModelLoadError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load model {entry.id!r} ({entry.format.value}): {exc}") from exc
    pipe.set_progress_bar_config(disable=True)
    if device.device.type == "cpu":
        make_batch_invariant(pipe)
    pipe = pipe.to(device.device)
    # On the device: torchao picks its kernels and weight layouts for where the weights live.
    quantize_pipeline(pipe, quantize, fuse_qkv=fuse_qkv)
    return pipe


def _load_hub(cls: Any, entry: ModelEntry, device: DeviceInfo, extra: dict[str, Any]) -> Any:
    try:
        # The cache first, so an offline worker with the model cached never touches the network.
        return cls.from_pretrained(entry.hub_id, torch_dtype=device.dtype, local_files_only=True, **extra)
    except OSError:
        pass
    try:
        return cls.from_pretrained(entry.hub_id, torch_dtype=device.dtype, **extra)
    except OSError as exc:
        raise ModelLoadError(
            f"model {entry.id!r} is the Hugging Face repo {entry.hub_id!r}, which is not in the local cache and "
            f"could not be downloaded (offline or no access): {exc}"
        ) from exc
