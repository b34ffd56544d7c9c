"""Weight quantization of a loaded pipeline with torchao (``--quantize``).

Modes (torchao configs, applied to every ``nn.Linear`` — attention projections and feed-forwards, where the
UNet spends most of its FLOPs; convolutions and the VAE stay in the pipeline's dtype):

- ``int8wo``: int8 weights, activations in the pipeline dtype. Halves the Linear weights' memory (fp16) and
  keeps the images closest to unquantized ones; applied to the text encoders too, where it pays in memory
  (SDXL's OpenCLIP bigG encoder is 1.4 GB in fp16) and costs nothing in speed (they run once per call).
- ``int8dq``: int8 weights and per-token dynamically quantized int8 activations (int8 GEMMs). UNet only: the
  encoders run one 77-token pass per call, too little work for int8 GEMMs to pay back quantizing the
  activations.
- ``fp8``: float8 (e4m3) weights and dynamic activations, UNet only, like ``int8dq``. Needs float8 tensor
  cores: CUDA compute capability 8.9 or newer (Ada, Hopper). Refused elsewhere.

Compiled mode composes: the compile thread compiles the already-quantized UNet (torchao's tensor subclasses
are made for torch.compile). Fusing the QKV projections concatenates weights, which the quantized subclasses
do not support, so on CUDA (where compiled mode fuses) the projections are fused here first, then quantized.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from ablerefusal.worker.engine.devices import DeviceInfo

log = logging.getLogger(__name__)

FP8_MIN_CAPABILITY = (8, 9)


class QuantizeError(RuntimeError):
    """The requested quantization cannot run here (wrong device, torchao missing)."""


def check_supported(mode: str, device: DeviceInfo) -> None:
    """Raise QuantizeError, saying why, when ``mode`` (validated by the settings) cannot run on ``device``."""
    if mode == "none":
        return
    try:
        import torchao  # noqa: F401
    except ImportError as exc:
        raise QuantizeError(f"quantize={mode} needs torchao: install the 'inference' extra") from exc
    if mode == "fp8":
        capability = torch.cuda.get_device_capability(device.device) if device.is_cuda else None
        if capability is None or capability < FP8_MIN_CAPABILITY:
            have = f"compute capability {capability[0]}.{capability[1]}" if capability else device.device.type
            raise QuantizeError(
                "quantize=fp8 needs a CUDA GPU with float8 tensor cores (compute capability 8.9 or newer: "
                f"Ada, Hopper); this worker runs on {device.name} ({have}). Use int8wo or int8dq instead."
            )


def _config(mode: str) -> Any:
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Int8DynamicActivationInt8WeightConfig,
        Int8WeightOnlyConfig,
    )

    return {
        "int8wo": Int8WeightOnlyConfig,
        "int8dq": Int8DynamicActivationInt8WeightConfig,
        "fp8": Float8DynamicActivationFloat8WeightConfig,
    }[mode]()


def quantize_pipeline(pipe: Any, mode: str, *, fuse_qkv: bool) -> None:
    """Quantize ``pipe``'s UNet (and, for int8wo, its text encoders) in place; ``fuse_qkv`` fuses first."""
    if mode == "none":
        return
    from torchao.quantization import quantize_

    if fuse_qkv:
        pipe.unet.fuse_qkv_projections()
    quantize_(pipe.unet, _config(mode))
    if mode == "int8wo":
        for name in ("text_encoder", "text_encoder_2"):
            encoder = getattr(pipe, name, None)
            if encoder is not None:
                quantize_(encoder, _config(mode))
    log.info("quantized %s with %s", type(pipe).__name__, mode)


def qkv_fused(unet: Any) -> bool:
    """Whether ``fuse_qkv_projections`` already ran on ``unet`` (diffusers keeps the unfused processors)."""
    return getattr(unet, "original_attn_processors", None) is not None
