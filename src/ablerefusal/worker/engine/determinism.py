"""Batch invariance on CPU: image i of a batch must equal the same seed generated alone, pixel for pixel.

CPU BLAS picks different kernels for different row counts, so a small GEMM (B, K)x(K, N) — the UNet's time
and added-condition embeddings, each resnet's time projection, SDXL's pooled text projection — rounds
differently for B=2 (one image with CFG) and B=8 (four images), and the VAE's convolutions do the same per
batch size. The last bits of those differences survive to the 8-bit pixels. On CPU we therefore run those
2-D linears row by row and decode the VAE one image at a time (diffusers' VAE slicing); both cost little
there. GPUs keep the batched kernels (the guarantee is stated for CPU).
"""

from __future__ import annotations

from typing import Any

import torch

_ROWWISE = "_ablerefusal_rowwise"


def _rowwise(module: torch.nn.Linear) -> None:
    # Idempotent: LoRA loading adds linears to an already patched pipeline, which is then patched again.
    if getattr(module, _ROWWISE, False):
        return
    setattr(module, _ROWWISE, True)
    original = module.forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and x.shape[0] > 1:
            return torch.cat([original(x[i : i + 1]) for i in range(x.shape[0])])
        return original(x)

    module.forward = forward  # type: ignore[method-assign,assignment]


def make_module_batch_invariant(module: torch.nn.Module) -> None:
    """The same row-by-row linears for a model used beside the pipeline (a ControlNet)."""
    for sub in module.modules():
        if isinstance(sub, torch.nn.Linear):
            _rowwise(sub)


def make_batch_invariant(pipe: Any) -> None:
    for name in ("unet", "text_encoder", "text_encoder_2"):
        component = getattr(pipe, name, None)
        if component is None:
            continue
        for module in component.modules():
            if isinstance(module, torch.nn.Linear):
                _rowwise(module)
    pipe.vae.enable_slicing()
