"""Adapter files by kind (LoRA, textual-inversion embedding, VAE, upscaler): where they live, what they are, their
hashes.

Folders, relative to ``models_dir``: ours (``loras/``, ``embeddings/``, ``vae/``) and an AUTOMATIC1111
install's (``models/Lora``, ``embeddings``, ``models/VAE``, ``models/ESRGAN``), so ``models_dir`` may point at
one as it is. Ids are file (or folder) names without the suffix, never paths: a request's id is only a
dictionary key. One module per kind says how to recognise its files from tensor names and shapes (``lora``,
``embedding``, ``vae``, ``upscaler``); ControlNets have their own registry (``engine/controlnet``).

Same safety rules as checkpoints: pickles (``.pt``, ``.ckpt``, ``.bin``, ``.pth``) are refused unless the
operator allows them, and then only ever read with ``torch.load(weights_only=True)``; a pickle with a
``.safetensors`` name is refused by content; links out of the models directory are refused. Refused files are
remembered with the reason. Hashes (sha256 of the file, and for safetensors LoRAs the kohya/A1111 "addnet"
hash of the tensor data that A1111 writes as ``Lora hashes``) are computed once per file version, in the
thread that scans (never the event loop: /v1/models runs the scan in a worker thread).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ablerefusal.protocol import EmbeddingFacts, ModelFamily, ModelFormat, ModelInfo
from ablerefusal.worker.engine.detection import (
    PICKLE_SUFFIXES,
    UnsupportedModelError,
    looks_like_pickle,
    read_safetensors_header,
)
from ablerefusal.worker.engine.errors import InvalidRequestError, ModelNotFoundError
from ablerefusal.worker.engine.kinds.embedding import RECORDED_KEYS, embedding_facts, recognise_embedding, vectors_of
from ablerefusal.worker.engine.kinds.lora import recognise_lora
from ablerefusal.worker.engine.kinds.upscaler import recognise_upscaler
from ablerefusal.worker.engine.kinds.vae import family_hint, recognise_vae
from ablerefusal.worker.engine.registry import MODEL_ID_RE, _slug
from ablerefusal.worker.engine.upscalers.loading import unwrap


class AdapterKind(StrEnum):
    lora = "lora"
    embedding = "embedding"
    vae = "vae"
    upscaler = "upscaler"


KIND_DIRS: dict[AdapterKind, tuple[str, ...]] = {
    AdapterKind.lora: ("loras", "models/Lora"),
    AdapterKind.embedding: ("embeddings",),
    AdapterKind.vae: ("vae", "models/VAE"),
    AdapterKind.upscaler: ("upscalers", "models/ESRGAN"),
}
_NOUNS = {
    AdapterKind.lora: "LoRA",
    AdapterKind.embedding: "embedding",
    AdapterKind.vae: "VAE",
    AdapterKind.upscaler: "upscaler",
}
# A1111's short hashes: LoRA and embedding 12 hex digits, VAE 10 (modules/sd_vae.py get_loaded_vae_hash).
_SHORT = {AdapterKind.lora: 12, AdapterKind.embedding: 12, AdapterKind.vae: 10, AdapterKind.upscaler: 10}


@dataclass
class AdapterEntry:
    kind: AdapterKind
    id: str
    name: str  # the file or folder name, as A1111 shows it
    family: ModelFamily
    format: ModelFormat
    path: Path
    size_bytes: int
    sha256: str
    addnet_hash: str | None = None  # kohya's hash of a safetensors LoRA's tensor data
    pickle: bool = False
    embedding: EmbeddingFacts | None = None  # an embedding's vectors, width and training record

    @property
    def short_hash(self) -> str:
        """The hash A1111 writes in infotext for this kind."""
        full = self.addnet_hash if self.kind is AdapterKind.lora and self.addnet_hash else self.sha256
        return full[: _SHORT[self.kind]]

    @property
    def version(self) -> tuple[str, str]:
        """What identifies the loaded weights: a file replaced under the same name is another version."""
        return (self.id, self.sha256)

    def info(self) -> ModelInfo:
        return ModelInfo(
            id=self.id,
            kind=self.kind.value,
            name=self.name,
            family=self.family,
            format=self.format,
            size_bytes=self.size_bytes,
            sha256=self.sha256,
            default_size=1024 if self.family is ModelFamily.sdxl else 512,
            embedding=self.embedding,
        )


def _hash(path: Path, offset: int = 0) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        fh.seek(offset)
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _addnet_hash(path: Path) -> str:
    with path.open("rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
    return _hash(path, 8 + header_len)


def _dir_hash(folder: Path) -> str:
    """A folder's hash: its weights file's (a diffusers VAE folder holds one)."""
    weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    return _hash(weights[0])


def load_pickle_state(path: Path) -> dict[str, Any]:
    """An allowed pickle's tensors, read with torch's restricted unpickler (no code runs)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise UnsupportedModelError(f"{path.name}: not a tensor dictionary")
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


@dataclass
class _Scan:
    entries: dict[str, AdapterEntry] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)


class AdapterRegistry:
    def __init__(self, models_dir: Path, allow_pickle: bool) -> None:
        self.models_dir = models_dir
        self.allow_pickle = allow_pickle
        self._lock = threading.Lock()
        self._scans: dict[AdapterKind, _Scan] = {}
        self._listings: dict[AdapterKind, tuple[tuple[str, int, int], ...]] = {}
        self._hashes: dict[tuple[Path, int, int], tuple[str, str | None]] = {}

    def folders(self, kind: AdapterKind) -> list[Path]:
        return [self.models_dir / rel for rel in KIND_DIRS[kind]]

    def _listing(self, kind: AdapterKind) -> tuple[tuple[str, int, int], ...]:
        out: list[tuple[str, int, int]] = []
        for folder in self.folders(kind):
            if not folder.is_dir():
                continue
            for path in folder.rglob("*"):
                try:
                    st = path.stat()
                except OSError:
                    continue
                out.append((str(path), st.st_size, st.st_mtime_ns))
        return tuple(sorted(out))

    def entries(self, kind: AdapterKind) -> dict[str, AdapterEntry]:
        """The entries of ``kind``, rescanning only when its folders changed (a scan hashes new files)."""
        listing = self._listing(kind)
        with self._lock:
            if self._listings.get(kind) == listing and kind in self._scans:
                return dict(self._scans[kind].entries)
        scan = self._scan(kind)
        with self._lock:
            self._scans[kind], self._listings[kind] = scan, listing
            return dict(scan.entries)

    def refused(self, kind: AdapterKind) -> dict[str, str]:
        self.entries(kind)
        with self._lock:
            return dict(self._scans[kind].refused)

    def infos(self, kind: AdapterKind) -> list[ModelInfo]:
        return [e.info() for e in self.entries(kind).values()]

    def get(self, kind: AdapterKind, adapter_id: str, field: str) -> AdapterEntry:
        """The entry a request names; unknown or refused ids are a 404 naming ``field`` and what exists."""
        noun = _NOUNS[kind]
        if ".." in adapter_id or not MODEL_ID_RE.match(adapter_id):
            raise InvalidRequestError(
                f"{field}: {noun} {adapter_id!r} is not an id (letters, digits, '.', '_', '-'; no paths)",
                field=field,
            )
        entries = self.entries(kind)
        entry = entries.get(adapter_id)
        if entry is None:
            reason = self.refused(kind).get(adapter_id)
            available = sorted(entries)
            message = f"{noun} {adapter_id!r} was refused: {reason}" if reason else f"unknown {noun} {adapter_id!r}"
            raise ModelNotFoundError(
                f"{field}: {message}; available: {', '.join(available) or '(none)'}", field=field, available=available
            )
        return entry

    # ---- scanning ---------------------------------------------------------------------------------------
    def _scan(self, kind: AdapterKind) -> _Scan:
        scan = _Scan()
        root = self.models_dir.resolve()
        for folder in self.folders(kind):
            if not folder.is_dir():
                continue
            for child in sorted(folder.iterdir(), key=lambda p: p.name):
                if child.name.startswith("."):
                    continue
                adapter_id = _slug(child.stem if child.is_file() else child.name)
                if not child.resolve().is_relative_to(root):
                    scan.refused[adapter_id] = "links outside the models directory"
                    continue
                if adapter_id in scan.entries:
                    scan.refused.setdefault(adapter_id, f"{child.name}: another {_NOUNS[kind]} has the same id")
                    continue
                try:
                    entry = self._recognise(kind, child, adapter_id)
                except UnsupportedModelError as exc:
                    scan.refused[adapter_id] = str(exc)
                    continue
                except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as exc:  # torch refused a pickle
                    scan.refused[adapter_id] = f"{child.name}: unreadable ({exc})"
                    continue
                if entry is not None:
                    scan.entries[adapter_id] = entry
        return scan

    def _hashes_of(self, path: Path, addnet: bool) -> tuple[str, str | None]:
        st = path.stat()
        key = (path, st.st_size, st.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = (_hash(path), _addnet_hash(path) if addnet else None)
        return self._hashes[key]

    def _recognise(self, kind: AdapterKind, path: Path, adapter_id: str) -> AdapterEntry | None:
        if path.is_dir():
            return self._recognise_folder(kind, path, adapter_id) if kind is AdapterKind.vae else None
        suffix = path.suffix.lower()
        if suffix == ".safetensors":
            header = read_safetensors_header(path)  # refuses a pickle with this name, by content
            metadata = header.get("__metadata__") or {}
            shapes = {k: v["shape"] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}
            is_pickle, recorded = False, dict(metadata)
        elif suffix in PICKLE_SUFFIXES:
            if not self.allow_pickle:
                raise UnsupportedModelError(
                    f"{path.name}: pickle files can run code when loaded and are refused; convert it to "
                    ".safetensors or start the worker with --allow-pickle"
                )
            if not looks_like_pickle(path):
                raise UnsupportedModelError(f"{path.name}: not a pickle file")
            state = load_pickle_state(path)
            recorded = {k: state.get(k) for k in RECORDED_KEYS}  # A1111's training record, beside the vectors
            if kind is AdapterKind.embedding:
                state = vectors_of(state)
            elif kind is AdapterKind.upscaler:
                state = dict(unwrap(state))  # Real-ESRGAN's .pth saves wrap the tensors in params_ema
            shapes = {k: list(v.shape) for k, v in state.items() if hasattr(v, "shape")}
            header, metadata, is_pickle = {k: {"shape": s} for k, s in shapes.items()}, {}, True
        else:
            return None
        facts = None
        if kind is AdapterKind.lora:
            family = recognise_lora(header)
        elif kind is AdapterKind.embedding:
            family = recognise_embedding(vectors_shapes(shapes), metadata)
            facts = embedding_facts(vectors_shapes(shapes), recorded)
        elif kind is AdapterKind.upscaler:
            recognise_upscaler(shapes)  # raises, with the reason, for anything but an RRDBNet
            family = ModelFamily.sd15  # pixels fit every family; ModelInfo needs one (see kinds.upscaler)
        else:
            family = recognise_vae(header, path.name) if not is_pickle else family_hint(path.name, {})
        sha256, addnet = self._hashes_of(path, addnet=kind is AdapterKind.lora and not is_pickle)
        return AdapterEntry(
            kind=kind,
            id=adapter_id,
            name=path.name,
            family=family,
            format=ModelFormat.single_file,
            path=path,
            size_bytes=path.stat().st_size,
            sha256=sha256,
            addnet_hash=addnet,
            pickle=is_pickle,
            embedding=facts,
        )

    def _recognise_folder(self, kind: AdapterKind, folder: Path, adapter_id: str) -> AdapterEntry | None:
        config_path = folder / "config.json"
        if not config_path.is_file():
            return None
        try:
            config = json.loads(config_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UnsupportedModelError(f"{folder.name}: unreadable config.json ({exc})") from exc
        if config.get("_class_name") != "AutoencoderKL":
            raise UnsupportedModelError(f"{folder.name}: not a VAE folder (class {config.get('_class_name')!r})")
        if not any(folder.glob("*.safetensors")) and not self.allow_pickle:
            raise UnsupportedModelError(f"{folder.name}: no .safetensors weights (pickle weights are refused)")
        return AdapterEntry(
            kind=kind,
            id=adapter_id,
            name=folder.name,
            family=family_hint(folder.name, {}),
            format=ModelFormat.diffusers,
            path=folder,
            size_bytes=sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()),
            sha256=_dir_hash(folder),
        )


def vectors_shapes(shapes: dict[str, list[int]]) -> dict[str, list[int]]:
    """An embedding's tensors without A1111's bookkeeping entries (step counters, names)."""
    return {k: s for k, s in shapes.items() if k in ("emb_params", "clip_l", "clip_g") or len(shapes) == 1}
