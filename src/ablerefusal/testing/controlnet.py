"""Tiny random-weight ControlNets matching the tiny SD 1.5 / SDXL models (``ablerefusal.testing.tiny``).

``ControlNetModel.from_unet`` copies the tiny UNet's encoder; a real ControlNet starts its output convolutions
("zero convolutions") at zero, which would make an untrained one do nothing, so here they get small random
weights too: the tiny ControlNet changes images measurably, as a trained one does.

Written into ``<models_dir>/controlnet/``:
- diffusers: ``<name>/`` (``config.json`` + ``diffusion_pytorch_model.safetensors``);
- single-file: ``<name>.safetensors`` plus the sidecar ``<name>.config/config.json`` its tiny shapes need. SD 1.5
  is written in the original layout of A1111's ControlNet files (``input_blocks``, ``input_hint_block``,
  ``zero_convs``, ``middle_block_out``), SDXL in diffusers' names (as SDXL ControlNets are usually shipped).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ablerefusal.protocol import ModelFamily, ModelFormat
from ablerefusal.testing.ldm import UNET_PREFIX, unet_to_ldm
from ablerefusal.worker.engine.detection import SIDECAR_SUFFIX

CONTROLNET_SUBDIR = "controlnet"
_COND_CHANNELS = (8, 8, 16, 16)  # 3 stride-2 stages: the 8x latent downscale, at tiny widths


def build_tiny_controlnet(family: ModelFamily | str, seed: int = 0, scale: int = 1) -> Any:
    """A ControlNet whose shapes match ``build_tiny_pipeline(family, scale=scale)``'s UNet."""
    from diffusers import ControlNetModel

    from ablerefusal.testing.tiny import build_tiny_pipeline

    unet = build_tiny_pipeline(family, scale=scale).unet
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=_COND_CHANNELS)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        zero_init = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]
        zero_init.append(controlnet.controlnet_cond_embedding.conv_out)
        for conv in zero_init:
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.2)
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=generator) * 0.05)
    return controlnet


def controlnet_to_ldm(controlnet: Any) -> dict[str, torch.Tensor]:
    """A diffusers ControlNetModel as an A1111 ControlNet file (no ``control_model.`` prefix)."""
    state = controlnet.state_dict()
    config = dict(controlnet.config)
    shared = {k: v for k, v in state.items() if not k.startswith(("controlnet_", "conv_in.", "time_embedding."))}
    shared |= {k: v for k, v in state.items() if k.startswith(("conv_in.", "time_embedding."))}
    out = {k.removeprefix(UNET_PREFIX): v for k, v in unet_to_ldm(shared, config).items()}
    n_cond = len(config["conditioning_embedding_out_channels"])
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "controlnet_down_blocks":
            out[f"zero_convs.{parts[1]}.0.{parts[2]}"] = value
        elif parts[0] == "controlnet_mid_block":
            out[f"middle_block_out.0.{parts[1]}"] = value
        elif key.startswith("controlnet_cond_embedding."):
            rest = parts[1:]
            # input_hint_block: conv_in, then the blocks, then conv_out, each conv followed by a SiLU.
            if rest[0] == "conv_in":
                index = 0
            elif rest[0] == "conv_out":
                index = 2 * (2 * (n_cond - 1)) + 2
            else:
                index = 2 * (int(rest[1]) + 1)
            out[f"input_hint_block.{index}.{rest[-1]}"] = value
    return {k: v.detach().contiguous() for k, v in out.items()}


def make_tiny_controlnet(
    models_dir: Path,
    family: ModelFamily | str,
    fmt: ModelFormat | str = ModelFormat.diffusers,
    *,
    name: str | None = None,
    seed: int = 0,
    scale: int = 1,
) -> Path:
    """Write a tiny ControlNet into ``models_dir/controlnet/``; returns its folder or file."""
    from safetensors.torch import save_file

    family, fmt = ModelFamily(family), ModelFormat(fmt)
    if fmt is ModelFormat.hub:
        raise ValueError("format must be 'diffusers' or 'single-file'")
    name = name or f"tiny-controlnet-{family.value}" + ("-single" if fmt is ModelFormat.single_file else "")
    dest = models_dir / CONTROLNET_SUBDIR
    dest.mkdir(parents=True, exist_ok=True)
    controlnet = build_tiny_controlnet(family, seed=seed, scale=scale)
    if fmt is ModelFormat.diffusers:
        controlnet.save_pretrained(dest / name, safe_serialization=True)
        return dest / name
    target = dest / f"{name}.safetensors"
    sidecar = dest / f"{name}{SIDECAR_SUFFIX}"
    sidecar.mkdir(exist_ok=True)
    (sidecar / "config.json").write_text(json.dumps(dict(controlnet.config), indent=2, default=list))
    if family is ModelFamily.sd15:
        state = controlnet_to_ldm(controlnet)
    else:
        state = {k: v.detach().contiguous() for k, v in controlnet.state_dict().items()}
    save_file(state, str(target))
    return target
