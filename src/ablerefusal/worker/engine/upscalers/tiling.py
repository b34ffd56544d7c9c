"""Run an upscaler over an image in tiles, so a large image needs only one tile's activations at a time.

Each tile is a ``tile``-pixel square of the image plus ``overlap`` pixels of the image around it as context
(clipped at the image's edges); the model's output for the context is cut away and the rest pasted in place.
There is no blending: wherever the context covers the model's receptive field
(``RRDBSpec.receptive_radius``) the result equals running the whole image at once, up to float rounding.
Published ESRGANs see hundreds of pixels (23 blocks), far more than A1111's default 8-pixel overlap, so with
those defaults a tile's border pixels differ slightly from a whole-image pass, as in A1111 and in
Real-ESRGAN's own ``--tile`` mode.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ablerefusal.worker.engine.upscalers.rrdbnet import RRDBNet

# A1111's defaults (settings ESRGAN_tile, ESRGAN_tile_overlap).
DEFAULT_TILE = 192
DEFAULT_OVERLAP = 8


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@torch.inference_mode()
def upscale_tensor(
    model: RRDBNet, image: torch.Tensor, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP
) -> torch.Tensor:
    """``image`` (1, 3, H, W) in [0, 1] -> (1, 3, H x scale, W x scale), not clamped. ``tile`` 0 runs the
    whole image at once."""
    spec = model.spec
    _, _, height, width = image.shape
    # Pixel-unshuffle models need sides that are multiples of their factor: pad by reflection (the padding's
    # output is cut off below), and keep tiles and context on that grid so every tile is a valid input.
    m = spec.unshuffle
    padded_h, padded_w = _round_up(height, m), _round_up(width, m)
    if (padded_h, padded_w) != (height, width):
        image = F.pad(image, (0, padded_w - width, 0, padded_h - height), mode="reflect")
    scale = spec.scale
    if tile <= 0 or (padded_h <= tile and padded_w <= tile):
        out = model(image)
    else:
        tile, overlap = _round_up(tile, m), _round_up(overlap, m)
        out = image.new_empty((1, spec.out_ch, padded_h * scale, padded_w * scale))
        for top in range(0, padded_h, tile):
            for left in range(0, padded_w, tile):
                bottom, right = min(top + tile, padded_h), min(left + tile, padded_w)
                y0, x0 = max(top - overlap, 0), max(left - overlap, 0)
                y1, x1 = min(bottom + overlap, padded_h), min(right + overlap, padded_w)
                result = model(image[:, :, y0:y1, x0:x1])
                inner = result[
                    :, :, (top - y0) * scale : (bottom - y0) * scale, (left - x0) * scale : (right - x0) * scale
                ]
                out[:, :, top * scale : bottom * scale, left * scale : right * scale] = inner
    return out[:, :, : height * scale, : width * scale]
