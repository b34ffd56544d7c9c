"""ControlNet models on disk: what they are (SD 1.5 or SDXL, from their tensors), under path-free ids.

Looked for in ``<models_dir>/controlnet/`` and, when ``models_dir`` is an AUTOMATIC1111 install,
``<models_dir>/models/ControlNet/``. Two layouts:
- a diffusers folder (``config.json`` with ``_class_name`` ControlNetModel, weights beside it);
- a single ``.safetensors`` file, in the original layout (``input_hint_block``, ``zero_convs`` …, with or
  without the ``control_model.`` prefix, as A1111's models) or diffusers' names (as most SDXL ControlNets
  are shipped). Its config comes from a ``<stem>.config/`` folder beside it when there is one (tiny test models
  need it), else from the bundled full-size config of its family.

Family from tensors: an ``add_embedding`` / ``label_emb`` (SDXL's added time conditioning) means SDXL; else the
cross-attention width says SD 1.5 (768) or SD 2.x (1024, refused: no SD 2 base models here). Pickles are
never read; a file that is no ControlNet is refused with the reason, as checkpoints are.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablerefusal.protocol import ModelFamily, ModelFormat, ModelInfo
from ablerefusal.worker.engine.detection import (
    PICKLE_SUFFIXES,
    SIDECAR_SUFFIX,
    UnsupportedModelError,
    read_safetensors_header,
)
from ablerefusal.worker.engine.errors import InvalidRequestError, ModelNotFoundError
from ablerefusal.worker.engine.registry import MODEL_ID_RE, FileHashes, _slug

# Folders searched, relative to models_dir: ours, then A1111's.
CONTROLNET_DIRS = ("controlnet", "models/ControlNet")
_LDM_PREFIX = "control_model."


@dataclass
class ControlNetEntry:
    id: str
    name: str
    family: ModelFamily
    format: ModelFormat
    path: Path
    size_bytes: int
    sha256: str | None = None
    config_dir: Path | None = None  # a single file's sidecar diffusers config folder
    legacy_hash: str | None = None  # A1111's old 8-hex model hash: how sd-webui-controlnet names ControlNets

    def info(self, loaded: bool) -> ModelInfo:
        return ModelInfo(
            id=self.id,
            kind="controlnet",
            name=self.name,
            family=self.family,
            format=self.format,
            size_bytes=self.size_bytes,
            loaded=loaded,
            sha256=self.sha256,
            legacy_hash=self.legacy_hash,
            default_size=1024 if self.family is ModelFamily.sdxl else 512,
        )


def family_from_controlnet_config(config: dict[str, Any]) -> ModelFamily:
    if config.get("_class_name") != "ControlNetModel":
        raise UnsupportedModelError(f"not a ControlNet (class {config.get('_class_name')!r})")
    if config.get("addition_embed_type") == "text_time":
        return ModelFamily.sdxl
    if config.get("cross_attention_dim") == 1024:
        raise UnsupportedModelError("an SD 2.x ControlNet (cross-attention width 1024); only SD 1.5 and SDXL run here")
    return ModelFamily.sd15


def family_from_controlnet_header(header: dict[str, Any]) -> ModelFamily:
    """From tensor names and shapes only (the header of a safetensors file)."""
    keys = {k.removeprefix(_LDM_PREFIX) for k in header if k != "__metadata__"}
    ldm = "input_hint_block.0.weight" in keys
    diffusers = "controlnet_cond_embedding.conv_in.weight" in keys
    if not (ldm or diffusers):
        if any("lora_controlnet" in k for k in header):
            raise UnsupportedModelError("a Control-LoRA, not a full ControlNet (not supported)")
        raise UnsupportedModelError("not a ControlNet: no input_hint_block / controlnet_cond_embedding tensors")
    if "label_emb.0.0.weight" in keys or "add_embedding.linear_1.weight" in keys:
        return ModelFamily.sdxl
    to_k = [k for k in keys if k.endswith("attn2.to_k.weight")]
    if to_k:
        shape = header[to_k[0]]["shape"] if to_k[0] in header else header[_LDM_PREFIX + to_k[0]]["shape"]
        if shape[-1] == 1024:
            raise UnsupportedModelError(
                "an SD 2.x ControlNet (cross-attention width 1024); only SD 1.5 and SDXL run here"
            )
    return ModelFamily.sd15


def legacy_hash(path: Path) -> str:
    """A1111's ``sd_models.model_hash``: sha256 of the 64 KiB at offset 1 MiB, first 8 hex digits."""
    with path.open("rb") as fh:
        fh.seek(0x100000)
        return hashlib.sha256(fh.read(0x10000)).hexdigest()[:8]


@dataclass
class _Scan:
    entries: dict[str, ControlNetEntry] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)


class ControlNetRegistry:
    """The ControlNets under a models directory; rescanned when asked for an id it does not know."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir
        self._lock = threading.Lock()
        self._scan = _Scan()
        self._hashes = FileHashes()

    def folders(self) -> list[Path]:
        return [self.models_dir / rel for rel in CONTROLNET_DIRS]

    def scan(self) -> dict[str, ControlNetEntry]:
        scan = _Scan()
        root = self.models_dir.resolve() if self.models_dir.is_dir() else None
        for folder in self.folders():
            if root is None or not folder.is_dir():
                continue
            for child in sorted(folder.iterdir(), key=lambda p: (p.is_file(), p.name)):
                if child.name.startswith(".") or child.name == "annotators":
                    continue
                if not child.resolve().is_relative_to(root):
                    scan.refused[_slug(child.stem)] = "links outside the models directory"
                    continue
                try:
                    self._scan_one(child, scan)
                except UnsupportedModelError as exc:
                    scan.refused[_slug(child.stem if child.is_file() else child.name)] = str(exc)
                except (OSError, ValueError, KeyError, IndexError) as exc:
                    scan.refused[_slug(child.stem if child.is_file() else child.name)] = f"unreadable: {exc}"
        with self._lock:
            self._scan = scan
        return scan.entries

    def _scan_one(self, child: Path, scan: _Scan) -> None:
        if child.is_dir():
            if child.name.endswith(SIDECAR_SUFFIX) and child.with_suffix(".safetensors").is_file():
                return
            config = child / "config.json"
            if not config.is_file():
                return
            family = family_from_controlnet_config(json.loads(config.read_text()))
            if not list(child.glob("*.safetensors")):
                raise UnsupportedModelError(f"{child.name}: no .safetensors weights (pickle weights are refused)")
            model_id = self._unique(child.name, scan)
            size = sum(p.stat().st_size for p in child.rglob("*") if p.is_file())
            scan.entries[model_id] = ControlNetEntry(
                model_id, child.name, family, ModelFormat.diffusers, child, size_bytes=size
            )
            return
        suffix = child.suffix.lower()
        if suffix in PICKLE_SUFFIXES:
            raise UnsupportedModelError(
                f"{child.name}: pickle files can run code when loaded and are refused; use the .safetensors version"
            )
        if suffix != ".safetensors":
            return
        family = family_from_controlnet_header(read_safetensors_header(child))
        sidecar = child.with_suffix(SIDECAR_SUFFIX)
        model_id = self._unique(child.stem, scan)
        scan.entries[model_id] = ControlNetEntry(
            model_id,
            child.name,
            family,
            ModelFormat.single_file,
            child,
            size_bytes=child.stat().st_size,
            sha256=self._hashes.get(child),
            legacy_hash=legacy_hash(child),
            config_dir=sidecar if (sidecar / "config.json").is_file() else None,
        )

    def _unique(self, base: str, scan: _Scan) -> str:
        model_id = _slug(base)
        n = 2
        while model_id in scan.entries:
            model_id = _slug(f"{base}-{n}")
            n += 1
        return model_id

    def entries(self) -> dict[str, ControlNetEntry]:
        with self._lock:
            return dict(self._scan.entries)

    def refused(self) -> dict[str, str]:
        with self._lock:
            return dict(self._scan.refused)

    def get(self, model_id: str, field: str) -> ControlNetEntry:
        """The entry for a unit's model id; ``field`` names the unit in errors (``controlnets.0.model``)."""
        if ".." in model_id or not MODEL_ID_RE.match(model_id):
            raise InvalidRequestError(
                f"{field}: a ControlNet id from /v1/models?kind=controlnet (letters, digits, '.', '_', '-')",
                field=field,
            )
        entry = self.entries().get(model_id) or self.scan().get(model_id)
        if entry is None:
            reason = self.refused().get(model_id)
            available = sorted(self.entries())
            message = f"{field}: " + (
                f"ControlNet {model_id!r} was refused: {reason}" if reason else f"unknown ControlNet {model_id!r}"
            )
            raise ModelNotFoundError(
                f"{message}; available: {', '.join(available) or '(none)'}", field=field, available=available
            )
        return entry
