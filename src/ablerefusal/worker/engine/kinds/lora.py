"""LoRA files: Kohya/A1111 (``lora_unet_*`` / ``lora_te*_`` with ``lora_down``/``lora_up``, LoCon included) and
diffusers/PEFT (``unet.*.lora_A``/``lora_B``) safetensors, recognised from tensor names and shapes.

Family: the cross-attention input width of a ``to_k``/``to_v`` LoRA says it when the model is full size (768 for
SD 1.5, 2048 for SDXL, 1024 for SD 2.x, refused); else the structure does (a second text encoder, or Kohya's
SDXL block names ``input_blocks``/``output_blocks``); else kohya's ``ss_base_model_version`` metadata or ours.
"""

from __future__ import annotations

import re
from typing import Any

from ablerefusal.protocol import ModelFamily
from ablerefusal.worker.engine.detection import FAMILY_METADATA_KEY, UnsupportedModelError

_KOHYA = (".lora_down.weight", ".lora_up.weight")
_PEFT = (".lora_A.weight", ".lora_B.weight")
_UNSUPPORTED = {".hada_w1_a": "LoHa", ".lokr_w1": "LoKr", ".oft_blocks": "OFT", ".diff": "full-difference (GLoRA)"}
_TO_KV = re.compile(r"attn2[._]to_[kv](?:\.|_)lora(?:_down|_A)\.weight$")


def _family_from_widths(names: list[str], header: dict[str, Any]) -> ModelFamily | None:
    widths = {int(header[n]["shape"][-1]) for n in names if _TO_KV.search(n)}
    if 1024 in widths:
        raise UnsupportedModelError("an SD 2.x LoRA (cross-attention width 1024); only SD 1.5 and SDXL run here")
    if 2048 in widths:
        return ModelFamily.sdxl
    if 768 in widths:
        return ModelFamily.sd15
    return None


def recognise_lora(header: dict[str, Any]) -> ModelFamily:
    """The family of a LoRA from its safetensors header; raises UnsupportedModelError for anything else."""
    names = [k for k in header if k != "__metadata__"]
    for marker, kind in _UNSUPPORTED.items():
        if any(marker in n for n in names):
            raise UnsupportedModelError(f"a LyCORIS {kind} file; diffusers loads LoRA and LoCon only")
    kohya = any(n.endswith(_KOHYA) for n in names)
    peft = any(n.endswith(_PEFT) for n in names)
    if not (kohya or peft):
        raise UnsupportedModelError("not a LoRA: no lora_down/lora_up or lora_A/lora_B tensors")
    family = _family_from_widths(names, header)
    if family is not None:
        return family
    if any(n.startswith(("lora_te1_", "lora_te2_", "text_encoder_2.", "lora_unet_input_blocks")) for n in names):
        return ModelFamily.sdxl
    if any(n.startswith(("lora_te_", "lora_unet_down_blocks")) for n in names):
        return ModelFamily.sd15
    metadata = header.get("__metadata__") or {}
    if str(metadata.get("ss_base_model_version", "")).startswith("sdxl"):
        return ModelFamily.sdxl
    if metadata.get(FAMILY_METADATA_KEY) in (ModelFamily.sd15.value, ModelFamily.sdxl.value):
        return ModelFamily(metadata[FAMILY_METADATA_KEY])
    if str(metadata.get("ss_base_model_version", "")).startswith("sd_v1"):
        return ModelFamily.sd15
    raise UnsupportedModelError("a LoRA whose family (SD 1.5 or SDXL) its tensors do not tell")
