"""Model registry: what the worker can load, under stable, path-free ids.

Sources: diffusers folders and single-file ``.safetensors`` checkpoints directly under the models directory,
and configured Hugging Face repo ids. Ids come from names on disk, and a hub model's id is its repo id
(``org/repo``, the one slash an id may have); none is ever joined to a path: a request's id is only ever a
dictionary key.
Files that are refused (pickles without opt-in, renamed pickles, broken files) are remembered with the
reason, so asking for one says why it is not offered.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ablerefusal.protocol import ModelFamily, ModelFormat, ModelInfo
from ablerefusal.worker.engine.detection import (
    DEMO_METADATA_KEY,
    MARKER_FILE,
    PICKLE_SUFFIXES,
    SIDECAR_SUFFIX,
    UnsupportedModelError,
    family_from_folder,
    family_from_tensor_names,
    inpainting_from_folder,
    inpainting_from_header,
    looks_like_pickle,
    read_safetensors_header,
)
from ablerefusal.worker.engine.errors import InvalidRequestError, ModelNotFoundError

log = logging.getLogger(__name__)

MODEL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# A Hugging Face repo id, as the hub itself allows them: owner/name, 96 characters each at most.
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_HASH_MAX_BYTES = 256 * 1024 * 1024  # hash small files at scan; big ones are hashed when first loaded
# Checkpoint folders besides the top level: ours, and an AUTOMATIC1111 install's (models_dir may point at one).
CHECKPOINT_DIRS = ("checkpoints", "models/Stable-diffusion")


@dataclass
class ModelEntry:
    id: str
    name: str
    family: ModelFamily
    format: ModelFormat
    path: Path | None = None
    hub_id: str | None = None
    size_bytes: int | None = None
    demo: bool = False
    sha256: str | None = None
    config_dir: Path | None = None  # sidecar diffusers configs of a single-file checkpoint
    pickle: bool = False
    inpainting: bool = False  # a 9-channel inpainting UNet: only modes with a mask can run it

    def info(self, loaded: bool) -> ModelInfo:
        return ModelInfo(
            id=self.id,
            name=self.name,
            family=self.family,
            format=self.format,
            size_bytes=self.size_bytes,
            loaded=loaded,
            demo=self.demo,
            sha256=self.sha256,
            default_size=1024 if self.family is ModelFamily.sdxl else 512,
            inpainting=self.inpainting,
        )


@dataclass
class _Scan:
    entries: dict[str, ModelEntry] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)


def check_model_id(model_id: str) -> None:
    """Refuse ids that could name a path (traversal, backslashes, absolute paths) before any lookup."""
    if ".." in model_id or not (MODEL_ID_RE.match(model_id) or HUB_ID_RE.match(model_id)):
        raise InvalidRequestError(
            "model must be a model id from /v1/models: letters, digits, '.', '_', '-', or a Hugging Face repo "
            "id owner/name; no other path components",
            field="model",
        )


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"
    return slug.replace("..", ".")[:128]


def _dir_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class FileHashes:
    """sha256 of files up to ``max_bytes``, remembered per (path, size, mtime) so a rescan hashes only what
    changed; larger files get None (hashed when first loaded, if ever)."""

    def __init__(self, max_bytes: int = _HASH_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._known: dict[tuple[Path, int, int], str] = {}

    def get(self, path: Path) -> str | None:
        stat = path.stat()
        key = (path, stat.st_size, stat.st_mtime_ns)
        if key not in self._known and stat.st_size <= self.max_bytes:
            self._known[key] = _sha256(path)
        return self._known.get(key)


def _hub_family(hub_id: str) -> ModelFamily:
    """From the cached model_index.json when the repo was fetched before; until then the name is the guess."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(hub_id, "model_index.json")
    if isinstance(cached, str):
        try:
            return family_from_folder(Path(cached).parent)
        except UnsupportedModelError:
            pass
    return ModelFamily.sdxl if "xl" in hub_id.lower() else ModelFamily.sd15


class ModelRegistry:
    def __init__(self, models_dir: Path, hub_ids: list[str], allow_pickle: bool) -> None:
        self.models_dir = models_dir
        self.hub_ids = list(hub_ids)
        self.allow_pickle = allow_pickle
        self._lock = threading.Lock()
        self._scan = _Scan()
        self._scanned_listing: tuple[tuple[str, int, int], ...] | None = None
        self._hashes = FileHashes()

    def _roots(self) -> list[Path]:
        """The folders whose children are checkpoints: the models directory and its checkpoint folders."""
        root = self.models_dir
        return [root, *(root / rel for rel in CHECKPOINT_DIRS if (root / rel).is_dir())]

    def _listing(self) -> tuple[tuple[str, int, int], ...]:
        """Names, sizes and mtimes two levels down: a model added, removed, replaced or still being copied
        (a component folder gaining its weights) changes it; reading it costs only stats."""
        root = self.models_dir
        if not root.is_dir():
            return ()
        out: list[tuple[str, int, int]] = []
        for child in (c for folder in self._roots() for c in folder.iterdir()):
            try:
                paths = [child, *child.iterdir()] if child.is_dir() else [child]
            except OSError:  # unreadable folder: scan() reports it; its own entry still counts
                paths = [child]
            for path in paths:
                try:
                    st = path.stat()
                except OSError:  # removed meanwhile: the next listing differs anyway
                    continue
                out.append((str(path.relative_to(root)), st.st_size, st.st_mtime_ns))
        return tuple(sorted(out))

    def refresh(self) -> dict[str, ModelEntry]:
        """The entries, rescanning only when the models directory changed since the last scan: the gateway
        asks for /v1/models every probe, and a scan reads every checkpoint's header."""
        if self._listing() != self._scanned_listing:
            return self.scan()
        return self.entries()

    def scan(self) -> dict[str, ModelEntry]:
        """Rescan the models directory (cheap: headers and configs only)."""
        scan = _Scan()
        listing = self._listing()
        root = self.models_dir.resolve()
        if root.is_dir():
            for folder in self._roots():
                children = sorted(folder.iterdir(), key=lambda p: (p.is_file(), p.name))
                for child in children:
                    self._scan_one(child, root, scan)
        for hub_id in self.hub_ids:
            if not HUB_ID_RE.match(hub_id) or ".." in hub_id:
                scan.refused[hub_id] = "not a Hugging Face repo id (owner/name)"
                continue
            scan.entries.setdefault(
                hub_id,
                ModelEntry(id=hub_id, name=hub_id, family=_hub_family(hub_id), format=ModelFormat.hub, hub_id=hub_id),
            )
        with self._lock:
            self._scan = scan
            self._scanned_listing = listing
        return scan.entries

    def _scan_one(self, child: Path, root: Path, scan: _Scan) -> None:
        if child.name.startswith("."):
            return
        resolved = child.resolve()
        if not resolved.is_relative_to(root):
            scan.refused[_slug(child.stem if child.is_file() else child.name)] = "links outside the models directory"
            return
        try:
            if child.is_dir():
                if child.name.endswith(SIDECAR_SUFFIX) and child.with_suffix(".safetensors").is_file():
                    return  # configs of a single-file checkpoint, not a model of its own
                if (child / "model_index.json").is_file():
                    self._add_folder(child, scan)
                return
            suffix = child.suffix.lower()
            if suffix == ".safetensors":
                self._add_safetensors(child, scan)
            elif suffix in PICKLE_SUFFIXES:
                self._add_pickle(child, scan)
        except UnsupportedModelError as exc:
            scan.refused[_slug(child.stem)] = str(exc)
            log.warning("refused %s: %s", child.name, exc)

    def _unique(self, base: str, scan: _Scan, fmt_suffix: str) -> str:
        model_id = _slug(base)
        return model_id if model_id not in scan.entries else _slug(f"{base}{fmt_suffix}")

    def _add_folder(self, folder: Path, scan: _Scan) -> None:
        family = family_from_folder(folder)
        weights = list(folder.rglob("*.safetensors"))
        if not weights and not self.allow_pickle:
            raise UnsupportedModelError(f"{folder.name}: no .safetensors weights (pickle weights are refused)")
        marker = folder / MARKER_FILE
        demo = marker.is_file() and bool(json.loads(marker.read_text()).get("demo"))
        model_id = self._unique(folder.name, scan, "-diffusers")
        scan.entries[model_id] = ModelEntry(
            id=model_id,
            name=folder.name,
            family=family,
            format=ModelFormat.diffusers,
            path=folder,
            size_bytes=_dir_size(folder),
            demo=demo,
            inpainting=inpainting_from_folder(folder),
        )

    def _add_safetensors(self, path: Path, scan: _Scan) -> None:
        header = read_safetensors_header(path)
        family = family_from_tensor_names(header)
        metadata = header.get("__metadata__") or {}
        sidecar = path.with_suffix(SIDECAR_SUFFIX)
        stat = path.stat()
        model_id = self._unique(path.stem, scan, ".safetensors")
        scan.entries[model_id] = ModelEntry(
            id=model_id,
            name=path.name,
            family=family,
            format=ModelFormat.single_file,
            path=path,
            size_bytes=stat.st_size,
            demo=metadata.get(DEMO_METADATA_KEY) == "true",
            sha256=self._hashes.get(path),
            config_dir=sidecar if (sidecar / "model_index.json").is_file() else None,
            inpainting=inpainting_from_header(header),
        )

    def _add_pickle(self, path: Path, scan: _Scan) -> None:
        if not self.allow_pickle:
            raise UnsupportedModelError(
                f"{path.name}: pickle checkpoints ({', '.join(sorted(PICKLE_SUFFIXES))}) can run code when loaded "
                "and are refused; convert it to .safetensors or start the worker with --allow-pickle"
            )
        if not looks_like_pickle(path):
            raise UnsupportedModelError(f"{path.name}: not a pickle checkpoint")
        # The family of a pickle is only known after loading it (with weights_only); SDXL is rare as .ckpt.
        family = ModelFamily.sdxl if "xl" in path.stem.lower() else ModelFamily.sd15
        model_id = self._unique(path.stem, scan, path.suffix)
        scan.entries[model_id] = ModelEntry(
            id=model_id,
            name=path.name,
            family=family,
            format=ModelFormat.single_file,
            path=path,
            size_bytes=path.stat().st_size,
            pickle=True,
            config_dir=path.with_suffix(SIDECAR_SUFFIX) if path.with_suffix(SIDECAR_SUFFIX).is_dir() else None,
        )

    def entries(self) -> dict[str, ModelEntry]:
        with self._lock:
            return dict(self._scan.entries)

    def get(self, model_id: str) -> ModelEntry:
        """The entry for a request's model id; rescans once so new files are found without a restart."""
        check_model_id(model_id)
        entry = self.entries().get(model_id)
        if entry is None:
            self.scan()
            entry = self.entries().get(model_id)
        if entry is None:
            with self._lock:
                reason = self._scan.refused.get(model_id)
            available = sorted(self.entries())
            message = (
                f"model {model_id!r} was refused: {reason}" if reason else f"unknown model {model_id!r}"
            ) + f"; available: {', '.join(available) or '(none)'}"
            raise ModelNotFoundError(message, field="model", available=available)
        return entry

    def refused(self) -> dict[str, str]:
        with self._lock:
            return dict(self._scan.refused)
