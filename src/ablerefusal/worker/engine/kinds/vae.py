"""VAE files: a single ``.safetensors`` in the original layout (``encoder.down.*``, ``decoder.up.*``, optionally
under ``first_stage_model.``) or diffusers' names, or a diffusers ``AutoencoderKL`` folder.

SD 1.5 and SDXL VAEs have the same tensor shapes (they differ in training and in the latent scale, which the
checkpoint's own config keeps), so the family reported is a name-based hint: ``xl`` in the name, or our
metadata, says SDXL. The worker does not refuse a VAE by family; A1111 does not either.
"""

from __future__ import annotations

from typing import Any

from ablerefusal.protocol import ModelFamily
from ablerefusal.worker.engine.detection import FAMILY_METADATA_KEY, UnsupportedModelError

_LDM = ("encoder.down.0.block.0.conv1.weight", "decoder.up.0.block.0.conv1.weight")
_DIFFUSERS = ("encoder.down_blocks.0.resnets.0.conv1.weight", "decoder.up_blocks.0.resnets.0.conv1.weight")
LDM_PREFIX = "first_stage_model."


def recognise_vae(header: dict[str, Any], name: str) -> ModelFamily:
    keys = {k.removeprefix(LDM_PREFIX) for k in header if k != "__metadata__"}
    if not (all(k in keys for k in _LDM) or all(k in keys for k in _DIFFUSERS)):
        raise UnsupportedModelError("not a VAE: no encoder/decoder tensors")
    if any(k.startswith(("model.diffusion_model.", "cond_stage_model.", "conditioner.")) for k in header):
        raise UnsupportedModelError("a whole checkpoint, not a VAE: put it with the checkpoints")
    return family_hint(name, header.get("__metadata__") or {})


def family_hint(name: str, metadata: dict[str, str]) -> ModelFamily:
    family = metadata.get(FAMILY_METADATA_KEY)
    if family in (ModelFamily.sd15.value, ModelFamily.sdxl.value):
        return ModelFamily(family)
    return ModelFamily.sdxl if "xl" in name.lower() else ModelFamily.sd15
