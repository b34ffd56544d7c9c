"""Per-row classifier-free guidance inside one diffusers pipeline call.

diffusers' Stable Diffusion pipelines take one ``guidance_scale`` for the whole batch and use it in exactly two
ways: ``guidance_scale > 1`` (is CFG on?) and ``uncond + guidance_scale * (text - uncond)``. ``RowGuidance``
answers both per row: it compares as its (common) side of 1 and multiplies the ``(text - uncond)`` batch by a
column of per-row scales. That keeps the stock pipeline (callbacks, schedulers, SDXL conditioning) instead of
a copied denoising loop.

Pixels stay the same as running each row alone: a tensor times a Python float computes in the tensor's
"opmath" type (float32 for float16/bfloat16/float32) and rounds once to the tensor's dtype, and so does
``(x.float() * scales).to(x.dtype)`` with the scales held in float32 — the same single rounding per element.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class RowGuidance:
    """A guidance scale per batch row, for a call whose rows are all guided (every scale > 1)."""

    def __init__(self, scales: Sequence[float], device: torch.device) -> None:
        if not scales or min(scales) <= 1.0:
            raise ValueError("RowGuidance needs at least one row and every scale > 1 (unguided rows run apart)")
        self.scales = list(scales)
        self._column = torch.tensor(self.scales, dtype=torch.float32, device=device)

    def __gt__(self, other: float) -> bool:
        # The pipelines ask "is CFG on?" as ``guidance_scale > 1``: true for every row by construction.
        return min(self.scales) > other

    def __mul__(self, delta: torch.Tensor) -> torch.Tensor:
        if delta.shape[0] != len(self.scales):
            raise ValueError(f"guidance for {len(self.scales)} rows applied to a batch of {delta.shape[0]}")
        column = self._column.view(-1, *([1] * (delta.dim() - 1)))
        return (delta.to(torch.float32) * column).to(delta.dtype)

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"RowGuidance({self.scales})"


def guidance_for(scales: Sequence[float], device: torch.device) -> float | RowGuidance:
    """The ``guidance_scale`` argument for rows with these scales: a plain float when they all agree."""
    if len(set(scales)) == 1:
        return scales[0]
    return RowGuidance(scales, device)
