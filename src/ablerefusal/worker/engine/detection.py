"""What a model file is, decided by its content: safetensors header parsing, pickle sniffing, family detection.

Pure Python (no torch): reading a safetensors header is 8 bytes of length plus a JSON document, so scanning
a models directory never deserialises weights, and a pickle never reaches an unpickler unless the operator
allowed pickles.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from typing import Any

from ablerefusal.protocol import ModelFamily

PICKLE_SUFFIXES = frozenset({".ckpt", ".pt", ".pth", ".bin"})
# Files our own model makers write (ablerefusal.testing.tiny): a single file's diffusers config folder beside
# it, a diffusers folder's marker, and the safetensors metadata keys that flag a demo model.
SIDECAR_SUFFIX = ".config"
MARKER_FILE = "ablerefusal.json"
DEMO_METADATA_KEY = "ablerefusal_demo"
FAMILY_METADATA_KEY = "ablerefusal_family"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own limit


class UnsupportedModelError(ValueError):
    """A file or folder that is not a loadable SD 1.5 / SDXL model; the message says why."""


def looks_like_pickle(path: Path) -> bool:
    """True for raw pickles (protocol 2+ starts with 0x80) and torch's zip archives holding a data.pkl."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head[:1] == b"\x80":
        return True
    if head == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zf:
                return any(n.endswith(".pkl") for n in zf.namelist())
        except zipfile.BadZipFile:
            return False
    return False


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file; raises UnsupportedModelError on anything else."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        raw_len = fh.read(8)
        if len(raw_len) == 8:
            (length,) = struct.unpack("<Q", raw_len)
            if 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
                raw = fh.read(length)
                if raw[:1] == b"{":
                    try:
                        header = json.loads(raw)
                    except (UnicodeDecodeError, json.JSONDecodeError):
                        header = None
                    if isinstance(header, dict):
                        return header
    if looks_like_pickle(path):
        raise UnsupportedModelError(
            f"{path.name} is a pickle file with a .safetensors name; pickles are refused (they can run code)"
        )
    raise UnsupportedModelError(f"{path.name} is not a valid safetensors file")


def family_from_tensor_names(header: dict[str, Any]) -> ModelFamily:
    """SD 1.5 vs SDXL from an LDM-layout checkpoint's tensor names, confirmed by the UNet's context width."""
    names = [k for k in header if k != "__metadata__"]
    if not any(n.startswith("model.diffusion_model.") for n in names):
        raise UnsupportedModelError("no UNet tensors (model.diffusion_model.*): not a Stable Diffusion checkpoint")
    has_clip_l = any(n.startswith("cond_stage_model.transformer.") for n in names)
    has_xl = any(n.startswith("conditioner.embedders.1.model.") for n in names)
    if any(n.startswith("cond_stage_model.model.") for n in names):
        raise UnsupportedModelError("SD 2.x checkpoint (OpenCLIP-H text encoder): only SD 1.5 and SDXL are supported")
    if not (has_clip_l or has_xl):
        raise UnsupportedModelError("no text encoder tensors: not a full SD 1.5 / SDXL checkpoint")
    # attn2.to_k maps the text context to the UNet width; its input width is the text context size.
    contexts = {
        int(info["shape"][-1])
        for name, info in header.items()
        if name.endswith("attn2.to_k.weight") and isinstance(info, dict)
    }
    if has_xl:
        if any(c == 768 for c in contexts):
            raise UnsupportedModelError("SDXL text encoders but a 768-wide UNet context: inconsistent checkpoint")
        return ModelFamily.sdxl
    if any(c in (1024, 2048) for c in contexts):
        raise UnsupportedModelError("CLIP-L text encoder but a wider UNet context: not an SD 1.5 checkpoint")
    return ModelFamily.sd15


def family_from_folder(folder: Path) -> ModelFamily:
    """SD 1.5 vs SDXL from a diffusers folder's model_index.json."""
    index_path = folder / "model_index.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UnsupportedModelError(f"{folder.name}: unreadable model_index.json ({exc})") from exc
    cls = str(index.get("_class_name", ""))
    if "text_encoder_2" in index or cls.startswith("StableDiffusionXL"):
        if cls and "Img2Img" not in cls and "Inpaint" not in cls and not cls.startswith("StableDiffusionXL"):
            raise UnsupportedModelError(f"{folder.name}: unsupported pipeline class {cls}")
        return ModelFamily.sdxl
    if cls.startswith("StableDiffusion") and "Upscale" not in cls and "Depth" not in cls:
        unet_cfg = folder / "unet" / "config.json"
        if unet_cfg.is_file():
            context = json.loads(unet_cfg.read_text()).get("cross_attention_dim")
            if context not in (None, 768) and context > 768:
                raise UnsupportedModelError(f"{folder.name}: UNet context {context} is SD 2.x, not SD 1.5")
        return ModelFamily.sd15
    raise UnsupportedModelError(f"{folder.name}: unsupported pipeline class {cls or '(none)'}")


# The UNet's first convolution: a dedicated inpainting model takes 9 channels (latents 4 + mask 1 + masked
# image latents 4) where an ordinary one takes 4.
_LDM_CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"
INPAINTING_CHANNELS = 9


def inpainting_from_header(header: dict[str, Any]) -> bool:
    """Whether an LDM-layout checkpoint is an inpainting model, from its first convolution's shape."""
    info = header.get(_LDM_CONV_IN)
    shape = info.get("shape") if isinstance(info, dict) else None
    return isinstance(shape, list) and len(shape) == 4 and shape[1] == INPAINTING_CHANNELS


def inpainting_from_folder(folder: Path) -> bool:
    """Whether a diffusers folder holds an inpainting model, from its UNet config's ``in_channels``."""
    try:
        config = json.loads((folder / "unet" / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and config.get("in_channels") == INPAINTING_CHANNELS
